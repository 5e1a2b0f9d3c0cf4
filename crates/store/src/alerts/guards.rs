//! The state guards of one [`AlertStore::commit`](super::AlertStore::commit) call, checked
//! against rows read once for the whole call instead of two point queries per commit.
//!
//! A backend reads, inside the transaction (or under the lock) that then applies the
//! commits, whether each state write's rule exists and its stored revision
//! ([`StateGuards::keys`] lists what to read, [`StateGuards::new`] takes the rows). The
//! commits are then checked and applied in order as before: a state written by an earlier
//! commit of the same call is checked against the revision that commit wrote
//! ([`StateGuards::applied`]), so the outcome of every commit is the one the per-commit
//! queries gave. Rules are not created or deleted by commits, so whether a rule exists
//! cannot change during the call.

use std::collections::HashMap;

use super::{AlertCommit, StateWrite};

/// The key of one state write to read: its commit's index in the call, then the state's
/// (rule id, version, dataset column).
pub(crate) struct GuardKey<'a> {
    pub(crate) commit: usize,
    pub(crate) rule_id: &'a str,
    pub(crate) version: &'a str,
    pub(crate) dataset: &'a str,
}

/// What a backend read for one [`GuardKey`]: whether the rule exists and the stored
/// revision of the state (`None`: no state yet).
pub(crate) struct GuardRow {
    pub(crate) commit: usize,
    pub(crate) rule_exists: bool,
    pub(crate) revision: Option<u64>,
}

type StateKey<'a> = (&'a str, &'a str, &'a str);

fn state_key(write: &StateWrite) -> StateKey<'_> {
    (
        write.rule_id.as_str(),
        write.version.as_str(),
        write.dataset.as_ref().map_or("", |d| d.as_str()),
    )
}

pub(crate) struct StateGuards<'a> {
    /// Per commit index: what was read for its state write.
    read: Vec<Option<(bool, u64)>>,
    /// Revisions written by the commits of this call applied so far.
    written: HashMap<StateKey<'a>, u64>,
}

impl<'a> StateGuards<'a> {
    /// The state writes of `commits` whose guards need a read, in commit order.
    pub(crate) fn keys(commits: &'a [AlertCommit]) -> impl Iterator<Item = GuardKey<'a>> {
        commits.iter().enumerate().filter_map(|(commit, c)| {
            let (rule_id, version, dataset) = state_key(c.state.as_ref()?);
            Some(GuardKey {
                commit,
                rule_id,
                version,
                dataset,
            })
        })
    }

    /// Guards for `commits` from the rows read for their [`keys`](Self::keys); a key
    /// without a row counts as a missing rule.
    pub(crate) fn new(
        commits: &'a [AlertCommit],
        rows: impl IntoIterator<Item = GuardRow>,
    ) -> Self {
        let mut read = vec![None; commits.len()];
        for row in rows {
            if let Some(slot) = read.get_mut(row.commit) {
                *slot = Some((row.rule_exists, row.revision.unwrap_or(0)));
            }
        }
        StateGuards {
            read,
            written: HashMap::new(),
        }
    }

    /// Whether the state guard of `commits[index]` holds (true without a state write).
    pub(crate) fn hold(&self, index: usize, commit: &'a AlertCommit) -> bool {
        let Some(write) = &commit.state else {
            return true;
        };
        let Some(Some((rule_exists, stored))) = self.read.get(index) else {
            return false;
        };
        if !rule_exists {
            // Deleted while being evaluated: nothing to record against.
            return false;
        }
        let revision = self
            .written
            .get(&state_key(write))
            .copied()
            .unwrap_or(*stored);
        revision == write.previous_revision
    }

    /// Records that `commit` was applied: its state now has the revision it wrote.
    pub(crate) fn applied(&mut self, commit: &'a AlertCommit) {
        if let Some(write) = &commit.state {
            self.written.insert(state_key(write), write.next.revision);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_core::alerting::{RuleId, SeriesState};
    use modelwatch_core::{ModelName, Version};

    fn write(rule: u32, previous_revision: u64) -> AlertCommit {
        AlertCommit {
            state: Some(StateWrite {
                rule_id: RuleId::from_u32(rule),
                model: ModelName::parse("fraud").unwrap(),
                version: Version::parse("v1").unwrap(),
                dataset: None,
                previous_revision,
                next: SeriesState {
                    revision: previous_revision + 1,
                    ..SeriesState::default()
                },
            }),
            ..AlertCommit::default()
        }
    }

    fn row(commit: usize, rule_exists: bool, revision: Option<u64>) -> GuardRow {
        GuardRow {
            commit,
            rule_exists,
            revision,
        }
    }

    #[test]
    fn a_chain_of_writes_to_one_state_is_checked_against_the_revision_written_before() {
        let commits = [write(1, 3), write(1, 4), write(1, 4)];
        let keys: Vec<_> = StateGuards::keys(&commits).map(|k| k.commit).collect();
        assert_eq!(keys, [0, 1, 2]);
        let rows = (0..3).map(|i| row(i, true, Some(3)));
        let mut guards = StateGuards::new(&commits, rows);
        assert!(guards.hold(0, &commits[0]));
        guards.applied(&commits[0]);
        assert!(guards.hold(1, &commits[1]));
        guards.applied(&commits[1]);
        // Revision 4 was replaced by 5 within the call.
        assert!(!guards.hold(2, &commits[2]));
    }

    #[test]
    fn a_missing_state_is_revision_zero_and_a_missing_rule_or_row_conflicts() {
        let commits = [
            write(1, 0),
            write(2, 0),
            write(3, 0),
            AlertCommit::default(),
        ];
        let guards = StateGuards::new(&commits, [row(0, true, None), row(1, false, None)]);
        assert!(guards.hold(0, &commits[0]));
        assert!(!guards.hold(1, &commits[1]));
        assert!(!guards.hold(2, &commits[2]));
        assert!(guards.hold(3, &commits[3]));
    }
}
