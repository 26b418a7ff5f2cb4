"""A process that edits a project as fast as it can, to be killed at random by test_store_kill.

Usage: ``python store_fault_writer.py PROJECT ACK_LOG SEED``

Before each edit it appends ``B <op json>`` to the ack log, and after the
edit's transaction committed it appends ``D``; both are fsynced. The parent
replays the ``D`` edits (and maybe the last begun one) on the state it saw
before, with :func:`apply`, and compares with the file.

The state model lives here too so that the writer and the checker share it.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studio.protocol import StepRecord

if TYPE_CHECKING:
    from studio.document.store import ProjectStore

CHECKPOINT_SIZE = 6000  # larger than a page: exercises overflow chains
_PIXEL = np.zeros((1, 1, 3), np.uint8)
LAYER_PIXELS = np.zeros((1, 1, 4), np.uint8)

State = dict[str, Any]


def checkpoint_bytes(version_id: str, index: int) -> bytes:
    return (f"{version_id}/{index};".encode() * CHECKPOINT_SIZE)[:CHECKPOINT_SIZE]


def read_state(conn: sqlite3.Connection) -> State:
    """The whole observable state of a project file, hidden rows included."""
    versions = {
        r[0]: {
            "parent": r[1],
            "branch": r[2],
            "name": r[3],
            "finished": r[4],
            "partial": r[5],
            "deleted": r[6],
            "result": r[7],
        }
        for r in conn.execute(
            "SELECT id, parent_id, branch_step, name, finished, partial, deleted,"
            " result_png IS NOT NULL FROM versions"
        )
    }
    steps: dict[str, list[int]] = {v: [] for v in versions}
    for vid, idx in conn.execute("SELECT version_id, idx FROM steps ORDER BY version_id, idx"):
        steps[vid].append(idx)
    layers = {
        r[0]: {
            "position": r[1],
            "name": r[2],
            "visible": r[3],
            "opacity": r[4],
            "deleted": r[5],
            "seq": r[6],
        }
        for r in conn.execute(
            "SELECT id, position, name, visible, opacity, deleted, rowid FROM layers"
        )
    }
    return {"versions": versions, "steps": steps, "layers": layers}


def comparable(state: State) -> State:
    layers = {k: {f: v for f, v in d.items() if f != "seq"} for k, d in state["layers"].items()}
    return {"versions": state["versions"], "steps": state["steps"], "layers": layers}


def _next_token(state: State) -> int:
    tokens = [v["deleted"] for v in state["versions"].values()]
    tokens += [lay["deleted"] for lay in state["layers"].values()]
    return max(tokens, default=0) + 1


def live_layer_order(state: State) -> list[str]:
    live = [(d["position"], d["seq"], k) for k, d in state["layers"].items() if not d["deleted"]]
    return [k for _, _, k in sorted(live)]


def _set_positions(state: State, order: list[str]) -> None:
    for i, k in enumerate(order):
        state["layers"][k]["position"] = i


def apply(state: State, op: dict[str, Any]) -> None:
    """Apply one edit to the model exactly as ProjectStore applies it to the file."""
    kind = op["op"]
    versions, steps, layers = state["versions"], state["steps"], state["layers"]
    if kind == "add_version":
        versions[op["id"]] = {
            "parent": op["parent"],
            "branch": op["branch"],
            "name": op["name"],
            "finished": 0,
            "partial": 0,
            "deleted": 0,
            "result": 0,
        }
        steps[op["id"]] = []
    elif kind == "append_step":
        steps[op["id"]] = sorted({*steps[op["id"]], op["index"]})
    elif kind == "rename":
        versions[op["id"]]["name"] = op["name"]
    elif kind == "finish":
        versions[op["id"]].update(finished=1, partial=int(op["partial"]), result=1)
    elif kind == "delete_version":
        token = _next_token(state)
        frontier = [op["id"]] if not versions[op["id"]]["deleted"] else []
        while frontier:
            for vid in frontier:
                versions[vid]["deleted"] = token
            frontier = [
                k for k, v in versions.items() if v["parent"] in frontier and not v["deleted"]
            ]
    elif kind == "restore_version":
        token = versions[op["id"]]["deleted"]
        if token:
            for v in versions.values():
                if v["deleted"] == token:
                    v["deleted"] = 0
    elif kind == "add_layer":
        order = live_layer_order(state)
        pos = max(0, min(op["position"], len(order)))
        layers[op["id"]] = {
            "position": pos,
            "name": op["name"],
            "visible": 1,
            "opacity": 1.0,
            "deleted": 0,
            "seq": max((lay["seq"] for lay in layers.values()), default=0) + 1,
        }
        order.insert(pos, op["id"])
        _set_positions(state, order)
    elif kind == "update_layer":
        layers[op["id"]].update(opacity=op["opacity"], visible=int(op["visible"]))
    elif kind == "move_layer":
        order = live_layer_order(state)
        order.remove(op["id"])
        order.insert(max(0, min(op["position"], len(order))), op["id"])
        _set_positions(state, order)
    elif kind == "delete_layer":
        layers[op["id"]]["deleted"] = _next_token(state)
        _set_positions(state, live_layer_order(state))
    elif kind == "restore_layer":
        order = live_layer_order(state)
        layer = layers[op["id"]]
        order.insert(max(0, min(layer["position"], len(order))), op["id"])
        layer["deleted"] = 0
        _set_positions(state, order)
    else:
        raise ValueError(kind)


def _choose(
    rng: random.Random, state: State, serial: list[int], undo: list[tuple[str, str]], tag: str
):
    versions, steps = state["versions"], state["steps"]
    live = [k for k, v in versions.items() if not v["deleted"]]
    growing = [k for k in live if not versions[k]["finished"]]
    live_layers = live_layer_order(state)
    serial[0] += 1
    new_id = f"{tag}-{serial[0]}"
    roll = rng.random()
    if roll < 0.15 or not live:
        parent = rng.choice(live) if live and rng.random() < 0.5 else None
        branch = None
        if parent is not None:
            own = steps[parent]
            if not own:
                parent = None
            else:
                branch = rng.choice(own)
        return {
            "op": "add_version",
            "id": new_id,
            "parent": parent,
            "branch": branch,
            "name": new_id,
        }
    if roll < 0.55 and growing:
        vid = rng.choice(growing)
        own = steps[vid]
        branch = versions[vid]["branch"]
        index = own[-1] + 1 if own else (0 if branch is None else branch + 1)
        return {"op": "append_step", "id": vid, "index": index}
    if roll < 0.63:
        return {"op": "rename", "id": rng.choice(live), "name": f"name {serial[0]}"}
    if roll < 0.68 and growing:
        return {"op": "finish", "id": rng.choice(growing), "partial": rng.random() < 0.3}
    if roll < 0.73:
        vid = rng.choice(live)
        undo.append(("version", vid))
        return {"op": "delete_version", "id": vid}
    if roll < 0.78 and undo:
        kind, target = undo.pop()
        return {"op": "restore_version" if kind == "version" else "restore_layer", "id": target}
    if roll < 0.84 or not live_layers:
        return {
            "op": "add_layer",
            "id": new_id,
            "name": new_id,
            "position": rng.randint(0, len(live_layers)),
        }
    if roll < 0.92:
        return {
            "op": "update_layer",
            "id": rng.choice(live_layers),
            "opacity": round(rng.random(), 3),
            "visible": rng.random() < 0.8,
        }
    if roll < 0.97:
        return {
            "op": "move_layer",
            "id": rng.choice(live_layers),
            "position": rng.randint(0, len(live_layers)),
        }
    lid = rng.choice(live_layers)
    undo.append(("layer", lid))
    return {"op": "delete_layer", "id": lid}


def _submit(store: ProjectStore, op: dict[str, Any]) -> Future[str] | Future[int] | Future[None]:
    kind = op["op"]
    if kind == "add_version":
        return store.add_version(
            recipe_json='{"prompt": "fault"}',
            name=op["name"],
            id=op["id"],
            parent_id=op["parent"],
            branch_step=op["branch"],
        )
    if kind == "append_step":
        return store.append_step(
            op["id"],
            StepRecord(
                op["index"],
                50,
                1000 - op["index"],
                None,
                checkpoint_bytes(op["id"], op["index"]),
                _PIXEL,
                _PIXEL,
            ),
        )
    if kind == "rename":
        return store.rename_version(op["id"], op["name"])
    if kind == "finish":
        return store.finish_version(op["id"], _PIXEL, partial=op["partial"])
    if kind == "delete_version":
        return store.delete_version(op["id"])
    if kind == "restore_version":
        return store.restore_version(op["id"])
    if kind == "add_layer":
        return store.add_layer(
            pixels=LAYER_PIXELS, name=op["name"], id=op["id"], position=op["position"]
        )
    if kind == "update_layer":
        return store.update_layer(op["id"], opacity=op["opacity"], visible=op["visible"])
    if kind == "move_layer":
        return store.move_layer(op["id"], op["position"])
    if kind == "delete_layer":
        return store.delete_layer(op["id"])
    if kind == "restore_layer":
        return store.restore_layer(op["id"])
    raise ValueError(kind)


def main(project: str, ack_log: str, seed: str) -> None:
    from studio.document.store import ProjectStore

    path = Path(project)
    store = ProjectStore.open(path) if path.exists() else ProjectStore.create(path)
    store.flush()
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        state = read_state(conn)
    rng = random.Random(seed)
    ack = os.open(ack_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    print("ready", flush=True)
    serial = [0]
    undo: list[tuple[str, str]] = []
    while True:
        op = _choose(rng, state, serial, undo, f"s{seed}")
        os.write(ack, b"B " + json.dumps(op).encode() + b"\n")
        os.fsync(ack)
        _submit(store, op).result()
        os.write(ack, b"D\n")
        os.fsync(ack)
        apply(state, op)


if __name__ == "__main__":
    main(*sys.argv[1:4])
