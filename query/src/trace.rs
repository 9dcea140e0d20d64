//! The trace graph of a session: receipts linked by `parent_id`, as a forest with its
//! defects (dangling parents, cycles, duplicate event ids) reported rather than hidden.
//! Pure: the caller reads the nodes (for example a session's receipts) and hands them over.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// Levels of indentation [`TraceGraph::render`] prints before it writes depths as numbers.
pub const MAX_INDENT: usize = 32;

/// One receipt as the trace sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceNode {
    /// Its sequence number.
    pub seq: u64,
    /// `event_id`.
    pub event_id: String,
    /// `parent_id`, the event id of the receipt it follows from.
    pub parent_id: Option<String>,
}

/// Receipts linked child to parent by `parent_id`.
///
/// A parent id names the *first* (lowest seq) receipt with that event id; later receipts
/// repeating an event id are listed in [`TraceGraph::duplicates`] and get no children. Nodes
/// given twice with the same seq count once.
#[derive(Debug, Clone, Default)]
pub struct TraceGraph {
    nodes: BTreeMap<u64, TraceNode>,
    parent: HashMap<u64, u64>,
    children: HashMap<u64, Vec<u64>>,
    roots: Vec<u64>,
    dangling: Vec<(u64, String)>,
    cycles: Vec<Vec<u64>>,
    duplicates: Vec<(String, Vec<u64>)>,
}

impl TraceGraph {
    /// Builds the graph of `nodes` (any order).
    #[must_use]
    pub fn build(nodes: impl IntoIterator<Item = TraceNode>) -> TraceGraph {
        let mut g = TraceGraph::default();
        for node in nodes {
            g.nodes.entry(node.seq).or_insert(node);
        }
        let mut by_id: HashMap<&str, Vec<u64>> = HashMap::new();
        for (seq, node) in &g.nodes {
            by_id.entry(node.event_id.as_str()).or_default().push(*seq);
        }
        for (seq, node) in &g.nodes {
            match &node.parent_id {
                None => g.roots.push(*seq),
                Some(pid) => match by_id.get(pid.as_str()).and_then(|s| s.first()) {
                    Some(&parent) => {
                        g.parent.insert(*seq, parent);
                        g.children.entry(parent).or_default().push(*seq);
                    }
                    None => g.dangling.push((*seq, pid.clone())),
                },
            }
        }
        g.duplicates = by_id
            .into_iter()
            .filter(|(_, seqs)| seqs.len() > 1)
            .map(|(id, seqs)| (id.to_owned(), seqs))
            .collect();
        g.duplicates.sort_by_key(|(_, seqs)| seqs[0]);
        g.cycles = find_cycles(&g.nodes, &g.parent);
        g
    }

    /// Receipts without a parent id, by seq.
    #[must_use]
    pub fn roots(&self) -> &[u64] {
        &self.roots
    }

    /// The children of `seq`, by seq.
    #[must_use]
    pub fn children(&self, seq: u64) -> &[u64] {
        self.children.get(&seq).map_or(&[], Vec::as_slice)
    }

    /// The parent of `seq`, when its parent id names a receipt in the graph.
    #[must_use]
    pub fn parent(&self, seq: u64) -> Option<u64> {
        self.parent.get(&seq).copied()
    }

    /// The node at `seq`.
    #[must_use]
    pub fn node(&self, seq: u64) -> Option<&TraceNode> {
        self.nodes.get(&seq)
    }

    /// How many nodes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Receipts whose parent id names no receipt in the graph: (seq, missing parent id).
    #[must_use]
    pub fn dangling(&self) -> &[(u64, String)] {
        &self.dangling
    }

    /// Parent chains that loop: each cycle's seqs in parent order, starting at its smallest
    /// seq; cycles ordered by that seq. A receipt that is its own parent is a cycle of one.
    #[must_use]
    pub fn cycles(&self) -> &[Vec<u64>] {
        &self.cycles
    }

    /// Event ids carried by more than one receipt, with their seqs (ascending).
    #[must_use]
    pub fn duplicates(&self) -> &[(String, Vec<u64>)] {
        &self.duplicates
    }

    /// The forest as text, one receipt per line (`#seq event_id`), children indented two
    /// spaces per level under their parent (beyond [`MAX_INDENT`] levels the line says
    /// `[depth N]` instead of indenting further). Every node appears once: trees from the roots,
    /// then from receipts with a missing parent, then from each cycle, all in seq order;
    /// defects are marked at the end of the line.
    #[must_use]
    pub fn render(&self) -> String {
        let mut tops: Vec<u64> = self.roots.clone();
        tops.extend(self.dangling.iter().map(|(seq, _)| *seq));
        tops.extend(self.cycles.iter().filter_map(|c| c.first().copied()));
        tops.sort_unstable();
        let mut out = String::new();
        let mut seen = HashSet::new();
        for top in tops {
            self.render_tree(top, &mut seen, &mut out);
        }
        out
    }

    /// Depth-first with an explicit stack: parent chains may be longer than the call stack.
    fn render_tree(&self, top: u64, seen: &mut HashSet<u64>, out: &mut String) {
        let mut stack = vec![(top, 0usize)];
        while let Some((seq, depth)) = stack.pop() {
            if !seen.insert(seq) {
                continue;
            }
            let Some(node) = self.nodes.get(&seq) else {
                continue;
            };
            if depth > MAX_INDENT {
                // Deep chains would print quadratic whitespace: cap it and say the depth.
                let _ = write!(out, "{}[depth {depth}] ", "  ".repeat(MAX_INDENT));
            } else {
                out.push_str(&"  ".repeat(depth));
            }
            let _ = write!(out, "#{seq} {}", node.event_id);
            self.write_marks(seq, out);
            out.push('\n');
            for &child in self.children(seq).iter().rev() {
                stack.push((child, depth + 1));
            }
        }
    }

    fn write_marks(&self, seq: u64, out: &mut String) {
        if let Some((_, pid)) = self.dangling.iter().find(|(s, _)| *s == seq) {
            let _ = write!(out, " (parent {pid} missing)");
        }
        if let Some(cycle) = self.cycles.iter().find(|c| c.contains(&seq)) {
            let path: Vec<String> = cycle
                .iter()
                .chain(cycle.first())
                .map(|s| format!("#{s}"))
                .collect();
            let _ = write!(out, " (cycle {})", path.join(" -> "));
        }
        if self
            .duplicates
            .iter()
            .any(|(_, seqs)| seqs.iter().skip(1).any(|s| *s == seq))
        {
            out.push_str(" (duplicate event id)");
        }
    }
}

/// Cycles of the parent map (each node has at most one parent, so a walk up either ends or
/// loops; every node is walked once).
fn find_cycles(nodes: &BTreeMap<u64, TraceNode>, parent: &HashMap<u64, u64>) -> Vec<Vec<u64>> {
    const ON_PATH: bool = false;
    const DONE: bool = true;
    let mut state: HashMap<u64, bool> = HashMap::new();
    let mut cycles = Vec::new();
    for &start in nodes.keys() {
        let mut path = Vec::new();
        let mut cur = Some(start);
        while let Some(seq) = cur {
            match state.get(&seq) {
                None => {
                    state.insert(seq, ON_PATH);
                    path.push(seq);
                    cur = parent.get(&seq).copied();
                }
                Some(&ON_PATH) => {
                    let at = path.iter().position(|&p| p == seq).unwrap_or(0);
                    let mut cycle = path[at..].to_vec();
                    let min_at = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                    cycle.rotate_left(min_at);
                    cycles.push(cycle);
                    break;
                }
                Some(_) => break,
            }
        }
        for seq in path {
            state.insert(seq, DONE);
        }
    }
    cycles.sort_by_key(|c| c.first().copied());
    cycles
}

/// Where a [`lineage`] walk stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum End {
    /// At a receipt without a parent id.
    Root,
    /// At a parent id the lookup could not find.
    Dangling(String),
    /// At a receipt already on the walk (this seq): the parent chain loops.
    Cycle(u64),
    /// After `max_hops` parent steps, with parents left.
    HopLimit,
}

/// A receipt's ancestry: `nodes[0]` is the start, each next one the previous one's parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The start and its ancestors, nearest first.
    pub nodes: Vec<TraceNode>,
    /// Why the walk stopped.
    pub end: End,
}

/// Follows `start`'s parents to its root, looking each parent id up with `lookup` (for
/// example in the event-id index, then the log), at most `max_hops` steps.
///
/// # Errors
/// The first error of `lookup`.
pub fn lineage<E>(
    start: TraceNode,
    mut lookup: impl FnMut(&str) -> Result<Option<TraceNode>, E>,
    max_hops: usize,
) -> Result<Lineage, E> {
    let mut seen = HashSet::from([start.seq]);
    let mut nodes = vec![start];
    loop {
        let Some(pid) = nodes.last().and_then(|n| n.parent_id.clone()) else {
            return Ok(Lineage {
                nodes,
                end: End::Root,
            });
        };
        if nodes.len() > max_hops {
            return Ok(Lineage {
                nodes,
                end: End::HopLimit,
            });
        }
        let Some(parent) = lookup(&pid)? else {
            return Ok(Lineage {
                nodes,
                end: End::Dangling(pid),
            });
        };
        if !seen.insert(parent.seq) {
            let end = End::Cycle(parent.seq);
            return Ok(Lineage { nodes, end });
        }
        nodes.push(parent);
    }
}
