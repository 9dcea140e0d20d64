//! Guards the trace graph: forests, dangling parents, cycles, duplicate event ids, the
//! rendered tree, and where a lineage walk ends.

use std::collections::HashMap;
use std::convert::Infallible;

use trailmix_query::{End, TraceGraph, TraceNode, lineage};

fn node(seq: u64, id: &str, parent: Option<&str>) -> TraceNode {
    TraceNode {
        seq,
        event_id: id.to_owned(),
        parent_id: parent.map(str::to_owned),
    }
}

#[test]
fn a_dag_renders_as_indented_trees_in_seq_order() {
    let g = TraceGraph::build([
        node(5, "tool-b", Some("llm")),
        node(1, "root", None),
        node(2, "llm", Some("root")),
        node(4, "tool-a", Some("llm")),
        node(6, "other-root", None),
        node(7, "approval", Some("tool-a")),
    ]);
    assert_eq!(g.roots(), [1, 6]);
    assert_eq!(g.children(2), [4, 5]);
    assert_eq!(g.parent(7), Some(4));
    assert!(g.dangling().is_empty() && g.cycles().is_empty() && g.duplicates().is_empty());
    assert_eq!(
        g.render(),
        "#1 root\n  #2 llm\n    #4 tool-a\n      #7 approval\n    #5 tool-b\n#6 other-root\n"
    );
}

#[test]
fn dangling_parents_are_reported_and_rendered_as_tops() {
    let g = TraceGraph::build([
        node(1, "a", Some("gone")),
        node(2, "b", Some("a")),
        node(3, "c", Some("also-gone")),
    ]);
    assert_eq!(
        g.dangling(),
        [(1, "gone".to_owned()), (3, "also-gone".to_owned())]
    );
    assert!(g.roots().is_empty());
    assert_eq!(
        g.render(),
        "#1 a (parent gone missing)\n  #2 b\n#3 c (parent also-gone missing)\n"
    );
}

#[test]
fn cycles_are_found_once_each_and_rendered_once() {
    let g = TraceGraph::build([
        node(10, "x", Some("z")),
        node(11, "y", Some("x")),
        node(12, "z", Some("y")),
        node(13, "hanger", Some("y")),
        node(20, "self", Some("self")),
        node(30, "root", None),
    ]);
    assert_eq!(g.cycles(), [vec![10, 12, 11], vec![20]]);
    assert_eq!(g.roots(), [30]);
    let text = g.render();
    assert_eq!(
        text,
        "#10 x (cycle #10 -> #12 -> #11 -> #10)\n  #11 y (cycle #10 -> #12 -> #11 -> #10)\n    \
         #12 z (cycle #10 -> #12 -> #11 -> #10)\n    #13 hanger\n#20 self (cycle #20 -> #20)\n#30 root\n"
    );
}

#[test]
fn duplicate_event_ids_attach_children_to_the_first() {
    let g = TraceGraph::build([
        node(1, "a", None),
        node(2, "a", None),
        node(3, "b", Some("a")),
        node(3, "ignored: same seq", None),
    ]);
    assert_eq!(g.len(), 3);
    assert_eq!(g.duplicates(), [("a".to_owned(), vec![1, 2])]);
    assert_eq!(g.children(1), [3]);
    assert!(g.children(2).is_empty());
    assert_eq!(g.render(), "#1 a\n  #3 b\n#2 a (duplicate event id)\n");
}

#[test]
fn a_long_chain_renders_without_recursion() {
    let nodes = (0..20_000u64).map(|i| {
        let parent = i.checked_sub(1).map(|p| format!("e{p}"));
        TraceNode {
            seq: i,
            event_id: format!("e{i}"),
            parent_id: parent,
        }
    });
    let g = TraceGraph::build(nodes);
    let text = g.render();
    assert_eq!(text.lines().count(), 20_000);
    let deep = text.lines().last().expect("20 000 lines");
    assert_eq!(
        deep,
        format!("{}[depth 19999] #19999 e19999", "  ".repeat(32))
    );
    assert!(TraceGraph::build([]).is_empty());
}

fn lookup_in(
    nodes: &[TraceNode],
) -> impl FnMut(&str) -> Result<Option<TraceNode>, Infallible> + '_ {
    let by_id: HashMap<&str, &TraceNode> = nodes.iter().map(|n| (n.event_id.as_str(), n)).collect();
    move |id| Ok(by_id.get(id).map(|n| (*n).clone()))
}

fn seqs(l: &trailmix_query::Lineage) -> Vec<u64> {
    l.nodes.iter().map(|n| n.seq).collect()
}

#[test]
fn lineage_ends_at_root_dangling_cycle_or_hop_limit() {
    let nodes = [
        node(1, "root", None),
        node(2, "mid", Some("root")),
        node(3, "leaf", Some("mid")),
        node(4, "orphan", Some("nowhere")),
        node(5, "p", Some("q")),
        node(6, "q", Some("p")),
    ];
    let l = lineage(nodes[2].clone(), lookup_in(&nodes), 10).expect("infallible");
    assert_eq!((seqs(&l), l.end), (vec![3, 2, 1], End::Root));
    let l = lineage(nodes[3].clone(), lookup_in(&nodes), 10).expect("infallible");
    assert_eq!(
        (seqs(&l), l.end),
        (vec![4], End::Dangling("nowhere".into()))
    );
    let l = lineage(nodes[4].clone(), lookup_in(&nodes), 10).expect("infallible");
    assert_eq!((seqs(&l), l.end), (vec![5, 6], End::Cycle(5)));
    let l = lineage(nodes[2].clone(), lookup_in(&nodes), 1).expect("infallible");
    assert_eq!((seqs(&l), l.end), (vec![3, 2], End::HopLimit));
    let l = lineage(nodes[0].clone(), lookup_in(&nodes), 0).expect("infallible");
    assert_eq!((seqs(&l), l.end), (vec![1], End::Root));
}

#[test]
fn lineage_passes_lookup_errors_through() {
    let start = node(3, "leaf", Some("mid"));
    let result = lineage(start, |_| Err::<Option<TraceNode>, _>("index down"), 5);
    assert_eq!(result, Err("index down"));
}
