"""Worker clients behind one interface (:class:`~studio.workers.client.WorkerClient`).

``local``: the in-process thread that owns torch. ``qt``: the adapter that
brings any client's messages to the UI thread. A Ray actor pool is the next
implementation of the same interface.
"""
