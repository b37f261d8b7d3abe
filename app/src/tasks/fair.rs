//! The waiting line of the embedded queue: first come, first served within each client, and
//! round robin between clients ([`crate::turns`]: between addresses, then between the clients
//! of one address), so one client's pile of jobs does not hold back another's.

use std::collections::{HashMap, VecDeque};

use super::TaskId;
use crate::turns::Rotation;

#[derive(Debug, Default)]
pub(super) struct FairLine {
    /// Clients with tasks waiting, in turn order.
    turns: Rotation,
    waiting: HashMap<String, VecDeque<TaskId>>,
    len: usize,
}

impl FairLine {
    pub(super) fn push(&mut self, client: &str, id: TaskId) {
        let line = self.waiting.entry(client.to_owned()).or_default();
        if line.is_empty() {
            self.turns.join(client);
        }
        line.push_back(id);
        self.len += 1;
    }

    /// The oldest task of the client whose turn it is; that client goes to the back.
    pub(super) fn pop(&mut self) -> Option<TaskId> {
        let waiting = &mut self.waiting;
        let id = self.turns.serve(|client| {
            let Some(line) = waiting.get_mut(client) else {
                return (None, false);
            };
            let id = line.pop_front();
            if line.is_empty() {
                waiting.remove(client);
                (id, false)
            } else {
                (id, true)
            }
        })?;
        self.len -= 1;
        Some(id)
    }

    pub(super) fn len(&self) -> usize {
        self.len
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
}
