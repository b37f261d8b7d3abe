//! Turns between clients, in two rounds: the addresses clients come from take turns, and within
//! an address the clients it names with `X-Client-Id`. An id is the client's own word, so it
//! only divides its address's turns between the clients behind it (several users of one NAT or
//! proxy); a client that sends a new id with every job takes no more turns than one that sends
//! none. Used by the embedded queue's waiting line and the sum-evens scheduler.
//!
//! A client is named as the task routes name it (`routes::tasks::client_id`):
//! `addr:<address> id:<id>`, `addr:<address>`, or anything else, which is its own address.

use std::collections::{HashMap, VecDeque};

/// The address part of a client's name: what a client's shares are counted by, since the id
/// is the client's own word.
pub(crate) fn address(client: &str) -> &str {
    client
        .split_once(" id:")
        .map_or(client, |(address, _)| address)
}

/// The IP address a client's name gives (an IPv6 /64 as its first address), if it gives one.
pub(crate) fn ip(client: &str) -> Option<std::net::IpAddr> {
    let address = address(client).strip_prefix("addr:")?;
    address.strip_suffix("/64").unwrap_or(address).parse().ok()
}

/// The clients waiting for a turn, in turn order.
#[derive(Debug, Default)]
pub(crate) struct Rotation {
    /// Addresses with clients waiting, in turn order.
    addresses: VecDeque<String>,
    /// Each of those addresses' clients, in turn order.
    clients: HashMap<String, VecDeque<String>>,
}

impl Rotation {
    /// Puts `client`, which has no turn yet, last in its address's turns; a new address goes
    /// last among the addresses.
    pub(crate) fn join(&mut self, client: &str) {
        let address = address(client);
        let clients = match self.clients.get_mut(address) {
            Some(clients) => clients,
            None => {
                self.addresses.push_back(address.to_owned());
                self.clients.entry(address.to_owned()).or_default()
            }
        };
        clients.push_back(client.to_owned());
    }

    /// Takes `client` out of the turns.
    pub(crate) fn leave(&mut self, client: &str) {
        let address = address(client);
        let Some(clients) = self.clients.get_mut(address) else {
            return;
        };
        clients.retain(|c| c != client);
        if clients.is_empty() {
            self.clients.remove(address);
            self.addresses.retain(|a| a != address);
        }
    }

    /// Offers a turn to each client in turn order until one takes it. `offer` answers with what
    /// the client took, if anything, and whether it still wants turns. Each client offered goes
    /// last in its address's turns (or leaves); the address whose client took the turn goes
    /// last among the addresses, and so does one none of whose clients took it.
    pub(crate) fn serve<T>(
        &mut self,
        mut offer: impl FnMut(&str) -> (Option<T>, bool),
    ) -> Option<T> {
        for _ in 0..self.addresses.len() {
            let address = self.addresses.pop_front()?;
            let Some(clients) = self.clients.get_mut(&address) else {
                continue;
            };
            let mut taken = None;
            for _ in 0..clients.len() {
                let Some(client) = clients.pop_front() else {
                    break;
                };
                let (took, stays) = offer(&client);
                if stays {
                    clients.push_back(client);
                }
                if took.is_some() {
                    taken = took;
                    break;
                }
            }
            if clients.is_empty() {
                self.clients.remove(&address);
            } else {
                self.addresses.push_back(address);
            }
            if taken.is_some() {
                return taken;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_s_name_gives_its_address_back() {
        assert_eq!(
            ip("addr:192.0.2.1 id:a"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            ip("addr:2001:db8::/64"),
            Some("2001:db8::".parse().unwrap())
        );
        assert_eq!(ip("id:a"), None);
        assert_eq!(ip("anonymous"), None);
    }

    /// Who gets the next `n` turns when every client always takes one and stays.
    fn order(rotation: &mut Rotation, n: usize) -> Vec<String> {
        (0..n)
            .filter_map(|_| rotation.serve(|client| (Some(client.to_owned()), true)))
            .collect()
    }

    #[test]
    fn addresses_take_turns_then_the_clients_of_an_address() {
        let mut rotation = Rotation::default();
        for client in [
            "addr:192.0.2.1 id:a",
            "addr:192.0.2.1 id:b",
            "addr:192.0.2.1 id:c",
            "addr:192.0.2.2",
        ] {
            rotation.join(client);
        }
        // The address that names three clients gets every other turn, as the one that names
        // none does; its three take those turns in order.
        assert_eq!(
            order(&mut rotation, 6),
            [
                "addr:192.0.2.1 id:a",
                "addr:192.0.2.2",
                "addr:192.0.2.1 id:b",
                "addr:192.0.2.2",
                "addr:192.0.2.1 id:c",
                "addr:192.0.2.2",
            ]
        );
    }

    #[test]
    fn a_client_that_takes_nothing_lets_the_next_go_and_one_that_leaves_is_gone() {
        let mut rotation = Rotation::default();
        for client in ["a", "addr:192.0.2.9 id:x", "addr:192.0.2.9 id:y"] {
            rotation.join(client);
        }
        // `a` has nothing ready; x takes a turn and leaves.
        let taken = rotation.serve(|client| match client {
            "a" => (None, true),
            "addr:192.0.2.9 id:x" => (Some(1), false),
            _ => (Some(2), true),
        });
        assert_eq!(taken, Some(1));
        assert_eq!(order(&mut rotation, 3), ["a", "addr:192.0.2.9 id:y", "a"]);
        rotation.leave("addr:192.0.2.9 id:y");
        rotation.leave("a");
        assert_eq!(rotation.serve(|_| (Some(()), true)), None);
        assert!(rotation.clients.is_empty() && rotation.addresses.is_empty());
    }
}
