"""Worker clients behind one interface (:class:`~studio.workers.client.WorkerClient`).

``local``: the in-process thread that owns torch. ``ray_client``: the same jobs on a
pool of Ray model actors (``ray_actor``: a LocalWorker in each), Ray imported only
when used. ``qt``: the adapter that brings any client's messages to the UI thread.
"""
