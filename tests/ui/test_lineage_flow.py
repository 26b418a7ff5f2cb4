"""The lineage view in the real window: nodes and edges match the version graph, a click
puts a version on view."""

from __future__ import annotations

from PySide6.QtCore import Qt

from studio.ui.lineage_view import LineageEdge
from tests.ui.conftest import GENERATION_TIMEOUT_MS, generate_and_wait


def test_the_lineage_draws_every_parent_and_a_click_shows_the_version(qtbot, window):
    first = generate_and_wait(qtbot, window)
    window.panel.seed.setText("99")
    second = generate_and_wait(qtbot, window)
    children = window.session.breed([first.id, second.id], children=2, dose=0.2)
    tree = window.session.tree
    qtbot.waitUntil(
        lambda: all(v in tree and tree.get(v).finished for v in children),
        timeout=GENERATION_TIMEOUT_MS,
    )
    window.session.show_version(first.id)
    window.branch_from_position(2)
    branch = generate_and_wait(qtbot, window)

    view = window.lineage.view
    graph = view.graph
    assert set(graph.places) == {v.id for v in tree.versions()}
    assert set(graph.edges) == {
        *(LineageEdge(c, p, "× 1", True) for c in children for p in (first.id, second.id)),
        LineageEdge(branch.id, first.id, "step 3", False),
    }
    rows = {vid: place[0] for vid, place in graph.places.items()}
    assert rows[first.id] == rows[second.id] == 0
    assert rows[branch.id] == 1 and all(rows[c] == 1 for c in children)
    assert len(set(graph.places.values())) == len(graph.places), "no two nodes overlap"

    window.lineage.dock.show()
    window.lineage.dock.raise_()
    target = children[1]
    centre = view.node_rect(target).center().toPoint()
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=centre)
    assert window.session.view.version_id == target
    assert window.versions.selected_ids() == [target]

    window.session.undo_stack.undo()  # the branch goes, and its node with it
    assert branch.id not in tree and branch.id not in view.graph.places
    assert all(edge.child != branch.id for edge in view.graph.edges)


def test_the_lineage_shortcut_brings_the_dock_forward_and_only_then_hides_it(qtbot, window):
    dock = window.lineage.dock
    window.versions_dock.raise_()  # the lineage tab sits behind the Versions tab
    qtbot.waitUntil(lambda: dock.visibleRegion().isEmpty())
    window.lineage.toggle.trigger()
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty())
    assert dock.isVisible() and window.lineage.toggle.isChecked()
    window.lineage.toggle.trigger()
    qtbot.waitUntil(lambda: not dock.isVisible())
    assert not window.lineage.toggle.isChecked()
    window.lineage.toggle.trigger()
    qtbot.waitUntil(lambda: dock.isVisible() and not dock.visibleRegion().isEmpty())
