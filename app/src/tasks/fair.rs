//! The waiting line of the embedded queue: first come, first served within each client, and
//! round robin between clients, so one client's pile of jobs does not hold back another's.

use std::collections::{HashMap, VecDeque};

use super::TaskId;

#[derive(Debug, Default)]
pub(super) struct FairLine {
    /// Clients with tasks waiting, in turn order.
    turns: VecDeque<String>,
    waiting: HashMap<String, VecDeque<TaskId>>,
    len: usize,
}

impl FairLine {
    pub(super) fn push(&mut self, client: &str, id: TaskId) {
        let line = self.waiting.entry(client.to_owned()).or_default();
        if line.is_empty() {
            self.turns.push_back(client.to_owned());
        }
        line.push_back(id);
        self.len += 1;
    }

    /// The oldest task of the client whose turn it is; that client goes to the back.
    pub(super) fn pop(&mut self) -> Option<TaskId> {
        let client = self.turns.pop_front()?;
        let line = self.waiting.get_mut(&client)?;
        let id = line.pop_front()?;
        if line.is_empty() {
            self.waiting.remove(&client);
        } else {
            self.turns.push_back(client);
        }
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
