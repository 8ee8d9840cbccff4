//! The difference of two snapshots of one server: which slabs were freed and which
//! are new (by slab id, per pool), and how retained bytes, referenced bytes,
//! connections and the process's memory moved. Comparing two profiles is what users
//! of heap profilers ask for most (`heaptrack_print --diff`).

use std::collections::BTreeSet;

use snapshot::{figure, Pool, Snapshot};

use super::format::delta;

/// How one pool changed between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolDiff {
    pub name: String,
    /// Ids of the slabs live in the first snapshot and gone in the second.
    pub slabs_freed: Vec<u64>,
    /// Ids of the slabs live in the second snapshot and not in the first.
    pub slabs_new: Vec<u64>,
    /// Slabs live in both.
    pub slabs_kept: u64,
    pub live_before: u64,
    pub live_after: u64,
    /// The pool's own counters: slabs allocated and freed in between, including
    /// those that came and went between the two snapshots.
    pub allocated_between: i64,
    pub freed_between: i64,
    pub retained_delta: i64,
    pub referenced_delta: i64,
}

/// How a server changed between two snapshots (`after` minus `before`).
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotDiff {
    pub role: String,
    /// Time between the two, ms (by the server's clock).
    pub between_ms: i64,
    /// False when the pid changed: the server restarted, slab ids start afresh.
    pub same_process: bool,
    pub pools: Vec<PoolDiff>,
    pub retained_delta: i64,
    pub referenced_delta: i64,
    pub live_slabs_delta: i64,
    pub open_delta: i64,
    pub accepted_between: i64,
    pub closed_between: i64,
    /// How RSS moved, or which snapshot could not read it and why.
    pub rss_delta: Result<i64, String>,
    /// How the allocator's resident bytes moved, or which snapshot could not read them.
    pub resident_delta: Result<i64, String>,
}

/// How a memory figure (a [`figure`] name) moved from `before` to `after`, or why
/// that cannot be said: "unreadable in the first snapshot (REASON)", in the second,
/// or in both.
fn figure_delta(before: &Snapshot, after: &Snapshot, name: &str) -> Result<i64, String> {
    let value = |s: &Snapshot| s.process.figure(name);
    let why = |s: &Snapshot| s.process.why_unreadable(name).to_string();
    match (value(before), value(after)) {
        (Some(a), Some(b)) => Ok(delta(a, b)),
        (None, Some(_)) => Err(format!(
            "unreadable in the first snapshot ({})",
            why(before)
        )),
        (Some(_), None) => Err(format!(
            "unreadable in the second snapshot ({})",
            why(after)
        )),
        (None, None) => Err(format!(
            "unreadable in both snapshots ({}; {})",
            why(before),
            why(after)
        )),
    }
}

impl SnapshotDiff {
    /// Slabs freed in all pools (by id).
    pub fn slabs_freed(&self) -> usize {
        self.pools.iter().map(|p| p.slabs_freed.len()).sum()
    }

    /// New slabs in all pools (by id).
    pub fn slabs_new(&self) -> usize {
        self.pools.iter().map(|p| p.slabs_new.len()).sum()
    }
}

fn slab_ids(pool: Option<&Pool>) -> BTreeSet<u64> {
    pool.map(|p| p.slabs.iter().map(|s| s.id).collect())
        .unwrap_or_default()
}

fn pool_diff(name: &str, before: Option<&Pool>, after: Option<&Pool>) -> PoolDiff {
    let a = slab_ids(before);
    let b = slab_ids(after);
    // A figure of the pool (0 where it is absent), and how it moved from before to after.
    let figure = |p: Option<&Pool>, f: fn(&Pool) -> u64| p.map(f).unwrap_or(0);
    let change = |f: fn(&Pool) -> u64| delta(figure(before, f), figure(after, f));
    PoolDiff {
        name: name.to_string(),
        slabs_freed: a.difference(&b).copied().collect(),
        slabs_new: b.difference(&a).copied().collect(),
        slabs_kept: a.intersection(&b).count() as u64,
        live_before: figure(before, |p| p.live_slabs),
        live_after: figure(after, |p| p.live_slabs),
        allocated_between: change(|p| p.slabs_allocated_total),
        freed_between: change(|p| p.slabs_freed_total),
        retained_delta: change(|p| p.retained_bytes),
        referenced_delta: change(|p| p.referenced_bytes),
    }
}

/// `after` minus `before`, pool by pool (in the order of `after`, then pools gone).
pub fn diff(before: &Snapshot, after: &Snapshot) -> SnapshotDiff {
    let mut names: Vec<&str> = after.pools.iter().map(|p| p.name.as_str()).collect();
    for p in &before.pools {
        if !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    let same_process = before.process.pid == after.process.pid;
    let pools = names
        .into_iter()
        .map(|name| {
            if same_process {
                pool_diff(name, before.pool(name), after.pool(name))
            } else {
                // Ids and counters restarted with the process: every old slab went
                // with it, and every live one is new.
                let before = before.pool(name);
                let after = after.pool(name);
                let mut d = pool_diff(name, before, None);
                let new = pool_diff(name, None, after);
                d.slabs_new = new.slabs_new;
                d.live_after = new.live_after;
                d.allocated_between = new.allocated_between;
                d.freed_between = d.live_before as i64;
                d.retained_delta += new.retained_delta;
                d.referenced_delta += new.referenced_delta;
                d
            }
        })
        .collect();
    SnapshotDiff {
        role: after.role.clone(),
        between_ms: delta(before.taken_at_ms, after.taken_at_ms),
        same_process,
        pools,
        retained_delta: delta(before.totals.retained_bytes, after.totals.retained_bytes),
        referenced_delta: delta(
            before.totals.referenced_bytes,
            after.totals.referenced_bytes,
        ),
        live_slabs_delta: delta(before.totals.live_slabs, after.totals.live_slabs),
        open_delta: delta(before.connections.open, after.connections.open),
        accepted_between: if same_process {
            delta(
                before.connections.accepted_total,
                after.connections.accepted_total,
            )
        } else {
            after.connections.accepted_total as i64
        },
        closed_between: if same_process {
            delta(
                before.connections.closed_total,
                after.connections.closed_total,
            )
        } else {
            after.connections.closed_total as i64
        },
        rss_delta: figure_delta(before, after, figure::RSS),
        resident_delta: figure_delta(before, after, figure::RESIDENT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::fixtures::{self, MIB};

    #[test]
    fn slabs_freed_and_new_are_found_by_id() {
        let before = fixtures::snapshot(&[(1, &[10, 11]), (2, &[12]), (3, &[])], 3);
        let mut after = fixtures::snapshot(&[(2, &[12]), (3, &[]), (4, &[13]), (5, &[])], 2);
        after.taken_at_ms += 5000;
        after.pools[0].slabs_allocated_total = 5;
        after.pools[0].slabs_freed_total = 1;
        let d = diff(&before, &after);
        assert_eq!(d.pools.len(), 1);
        let p = &d.pools[0];
        assert_eq!(p.name, "tcp");
        assert_eq!(p.slabs_freed, vec![1]);
        assert_eq!(p.slabs_new, vec![4, 5]);
        assert_eq!(p.slabs_kept, 2);
        assert_eq!((p.live_before, p.live_after), (3, 4));
        assert_eq!(p.allocated_between, 2);
        assert_eq!(p.freed_between, 1);
        assert_eq!(p.retained_delta, MIB as i64);
        assert_eq!(p.referenced_delta, -200);
        assert_eq!(d.retained_delta, MIB as i64);
        assert_eq!(d.referenced_delta, -200);
        assert_eq!(d.live_slabs_delta, 1);
        assert_eq!(d.open_delta, -1);
        assert_eq!(d.between_ms, 5000);
        assert_eq!(d.rss_delta, Ok(MIB as i64));
        assert!(d.same_process);
        assert_eq!((d.slabs_freed(), d.slabs_new()), (1, 2));
    }

    #[test]
    fn a_figure_unreadable_in_one_snapshot_says_which_and_why() {
        let before = fixtures::snapshot(&[(1, &[10])], 1);
        let mut after = before.clone();
        after.process.rss_bytes = None;
        after.process.unreadable = vec![snapshot::Unreadable {
            figure: figure::RSS.into(),
            reason: "reading /proc/self/status: Permission denied".into(),
        }];
        let d = diff(&before, &after);
        assert_eq!(
            d.rss_delta,
            Err(
                "unreadable in the second snapshot (reading /proc/self/status: Permission denied)"
                    .into()
            )
        );
        assert_eq!(d.resident_delta, Ok(0));
        let back = diff(&after, &before);
        assert!(
            back.rss_delta
                .as_ref()
                .is_err_and(|e| e.starts_with("unreadable in the first snapshot (reading")),
            "{:?}",
            back.rss_delta
        );
        let both = diff(&after, &after);
        assert!(both
            .rss_delta
            .is_err_and(|e| e.starts_with("unreadable in both")));
    }

    #[test]
    fn freeing_every_pinned_slab_shows_the_whole_retained_drop() {
        let before = fixtures::with_pools(
            "proxy",
            vec![
                fixtures::pool("tcp", MIB, &[(1, &[])]),
                fixtures::pool("tls", 10 * MIB, &[(1, &[1, 2]), (2, &[3]), (3, &[])]),
            ],
            3,
        );
        let after = fixtures::with_pools(
            "proxy",
            vec![
                fixtures::pool("tcp", MIB, &[(1, &[])]),
                fixtures::pool("tls", 10 * MIB, &[(3, &[])]),
            ],
            0,
        );
        let d = diff(&before, &after);
        assert_eq!(d.role, "proxy");
        assert_eq!(d.retained_delta, -20 * MIB as i64);
        assert_eq!(d.referenced_delta, -600);
        let tls = d.pools.iter().find(|p| p.name == "tls").expect("tls pool");
        assert_eq!(tls.slabs_freed, vec![1, 2]);
        assert!(tls.slabs_new.is_empty());
        let tcp = d.pools.iter().find(|p| p.name == "tcp").expect("tcp pool");
        assert!(tcp.slabs_freed.is_empty() && tcp.slabs_new.is_empty());
        assert_eq!(tcp.retained_delta, 0);
    }

    #[test]
    fn a_pool_present_on_one_side_only_counts_as_empty_on_the_other() {
        let before = fixtures::with_pools("wss", vec![], 0);
        let after = fixtures::snapshot(&[(1, &[7])], 1);
        let d = diff(&before, &after);
        assert_eq!(d.pools[0].slabs_new, vec![1]);
        assert_eq!(d.pools[0].live_before, 0);
        let back = diff(&after, &before);
        assert_eq!(back.pools[0].slabs_freed, vec![1]);
        assert_eq!(back.retained_delta, -(MIB as i64));
    }

    #[test]
    fn a_restart_between_the_snapshots_is_flagged() {
        let before = fixtures::snapshot(&[(1, &[]), (2, &[])], 0);
        let mut after = fixtures::snapshot(&[(1, &[])], 0);
        after.process.pid += 1;
        after.pools[0].slabs_allocated_total = 1;
        let d = diff(&before, &after);
        assert!(!d.same_process);
        let p = &d.pools[0];
        assert_eq!(
            p.slabs_freed,
            vec![1, 2],
            "every old slab went with the process"
        );
        assert_eq!(
            p.slabs_new,
            vec![1],
            "and every live one is new, same id or not"
        );
        assert_eq!(p.slabs_kept, 0);
        assert_eq!((p.allocated_between, p.freed_between), (1, 2));
        assert_eq!(p.retained_delta, -(MIB as i64));
        assert_eq!(d.retained_delta, -(MIB as i64));
    }
}
