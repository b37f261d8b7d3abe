//! The waiting line of the embedded queue: first come, first served within each client, and
//! round robin between clients ([`crate::turns`]: between addresses, then between the clients
//! of one address), so one client's pile of jobs does not hold back another's.

use std::collections::{HashMap, VecDeque};

use super::TaskId;
use crate::turns::{self, Rotation};

#[derive(Debug, Default)]
pub(super) struct FairLine {
    /// Clients with tasks waiting, in turn order.
    turns: Rotation,
    waiting: HashMap<String, VecDeque<TaskId>>,
    /// Tasks waiting, in all and by the address of their client.
    tally: Tally,
}

/// A count of tasks, in all and by their client's address ([`turns::address`]).
#[derive(Debug, Default)]
pub(super) struct Tally {
    total: usize,
    by_address: HashMap<String, usize>,
}

impl Tally {
    pub(super) fn add(&mut self, client: &str) {
        self.total += 1;
        *self
            .by_address
            .entry(turns::address(client).to_owned())
            .or_default() += 1;
    }

    pub(super) fn remove(&mut self, client: &str) {
        let address = turns::address(client);
        if let Some(count) = self.by_address.get_mut(address) {
            self.total -= 1;
            *count -= 1;
            if *count == 0 {
                self.by_address.remove(address);
            }
        }
    }

    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// The tasks of the clients at `client`'s address.
    pub(super) fn at_address_of(&self, client: &str) -> usize {
        self.by_address
            .get(turns::address(client))
            .copied()
            .unwrap_or(0)
    }
}

impl FairLine {
    pub(super) fn push(&mut self, client: &str, id: TaskId) {
        let line = self.waiting.entry(client.to_owned()).or_default();
        if line.is_empty() {
            self.turns.join(client);
        }
        line.push_back(id);
        self.tally.add(client);
    }

    /// The oldest task of the client whose turn it is; that client goes to the back.
    pub(super) fn pop(&mut self) -> Option<TaskId> {
        let (waiting, tally) = (&mut self.waiting, &mut self.tally);
        self.turns.serve(|client| {
            let Some(line) = waiting.get_mut(client) else {
                return (None, false);
            };
            let id = line.pop_front();
            if id.is_some() {
                tally.remove(client);
            }
            if line.is_empty() {
                waiting.remove(client);
                (id, false)
            } else {
                (id, true)
            }
        })
    }

    /// Tasks waiting, in all and by address.
    pub(super) fn tally(&self) -> &Tally {
        &self.tally
    }

    pub(super) fn len(&self) -> usize {
        self.tally.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_take_turns() {
        let mut line = FairLine::default();
        for n in 1..=3 {
            line.push("a", TaskId(n));
        }
        line.push("b", TaskId(10));
        line.push("c", TaskId(20));
        line.push("b", TaskId(11));
        assert_eq!(line.len(), 6);
        let order: Vec<u128> = std::iter::from_fn(|| line.pop()).map(|id| id.0).collect();
        assert_eq!(order, [1, 10, 20, 2, 11, 3]);
        assert_eq!(line.len(), 0);
    }

    #[test]
    fn tasks_are_counted_by_their_clients_address() {
        let mut line = FairLine::default();
        line.push("addr:192.0.2.1 id:a", TaskId(1));
        line.push("addr:192.0.2.1 id:b", TaskId(2));
        line.push("addr:192.0.2.2", TaskId(3));
        let tally = line.tally();
        assert_eq!(tally.total(), 3);
        assert_eq!(tally.at_address_of("addr:192.0.2.1 id:c"), 2, "ids share");
        assert_eq!(tally.at_address_of("addr:192.0.2.2 id:a"), 1);
        assert_eq!(tally.at_address_of("addr:192.0.2.3"), 0);
        assert_eq!(line.pop(), Some(TaskId(1)));
        assert_eq!(line.tally().at_address_of("addr:192.0.2.1"), 1);
        while line.pop().is_some() {}
        assert_eq!(line.tally().total(), 0);
        assert!(
            line.tally().by_address.is_empty(),
            "emptied addresses are dropped"
        );
    }
}
