//! Sets of protocol and port: what one connection allows. Ports are kept as
//! merged inclusive ranges per protocol, so sets of any size cost what
//! their boundaries cost, and union and intersection are linear merges.

use std::fmt;

/// The protocols NetworkPolicy knows, in the order connections print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Protocol {
    #[serde(rename = "SCTP")]
    Sctp,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Sctp, Protocol::Tcp, Protocol::Udp];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Sctp => "SCTP",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }

    /// From a NetworkPolicy or container port's `protocol` (absent: TCP).
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

pub const MIN_PORT: u16 = 1;
pub const MAX_PORT: u16 = 65535;

/// A set of (protocol, port) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Conn {
    /// Per protocol (`Protocol::ALL` order), sorted disjoint non-adjacent
    /// inclusive ranges.
    ranges: [Vec<(u16, u16)>; 3],
}

impl Conn {
    /// No connection at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every protocol and port: "All Connections".
    pub fn all() -> Self {
        let full = vec![(MIN_PORT, MAX_PORT)];
        Self {
            ranges: [full.clone(), full.clone(), full],
        }
    }

    /// Ports `from..=to` of one protocol (an empty set when `from > to`).
    pub fn range(protocol: Protocol, from: u16, to: u16) -> Self {
        let mut c = Self::none();
        if from <= to {
            c.ranges[protocol.index()].push((from.max(MIN_PORT), to));
        }
        c
    }

    /// Every port of one protocol.
    pub fn protocol(protocol: Protocol) -> Self {
        Self::range(protocol, MIN_PORT, MAX_PORT)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(Vec::is_empty)
    }

    pub fn is_all(&self) -> bool {
        self.ranges.iter().all(|r| r == &[(MIN_PORT, MAX_PORT)])
    }

    /// Adds every pair of `other`.
    pub fn add(&mut self, other: &Conn) {
        for (mine, theirs) in self.ranges.iter_mut().zip(&other.ranges) {
            if theirs.is_empty() {
                continue;
            }
            if mine.is_empty() {
                mine.clone_from(theirs);
                continue;
            }
            mine.extend_from_slice(theirs);
            merge(mine);
        }
    }

    /// The pairs in both.
    pub fn intersect(&self, other: &Conn) -> Conn {
        let mut out = Conn::none();
        for (i, (a, b)) in self.ranges.iter().zip(&other.ranges).enumerate() {
            let (mut x, mut y) = (0, 0);
            while x < a.len() && y < b.len() {
                let lo = a[x].0.max(b[y].0);
                let hi = a[x].1.min(b[y].1);
                if lo <= hi {
                    out.ranges[i].push((lo, hi));
                }
                if a[x].1 < b[y].1 {
                    x += 1;
                } else {
                    y += 1;
                }
            }
        }
        out
    }

    /// The ranges of one protocol.
    pub fn ports(&self, protocol: Protocol) -> &[(u16, u16)] {
        &self.ranges[protocol.index()]
    }
}

fn merge(r: &mut Vec<(u16, u16)>) {
    r.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(r.len());
    for &(s, e) in r.iter() {
        match out.last_mut() {
            Some(last) if u32::from(s) <= u32::from(last.1) + 1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *r = out;
}

/// The analyzer's notation: `All Connections`, or each protocol that has
/// ports, in SCTP, TCP, UDP order, with its ranges:
/// `SCTP 1-65535,TCP 1-79,81-65535,UDP 1-65535`. An empty set prints as
/// `No Connections`.
impl fmt::Display for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("All Connections");
        }
        if self.is_empty() {
            return f.write_str("No Connections");
        }
        let mut first = true;
        for p in Protocol::ALL {
            let r = self.ports(p);
            if r.is_empty() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{} ", p.as_str())?;
            for (i, (s, e)) in r.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                if s == e {
                    write!(f, "{s}")?;
                } else {
                    write!(f, "{s}-{e}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_the_analyzer() {
        assert_eq!(Conn::all().to_string(), "All Connections");
        assert_eq!(Conn::none().to_string(), "No Connections");
        assert_eq!(
            Conn::range(Protocol::Tcp, 8080, 8080).to_string(),
            "TCP 8080"
        );
        let mut c = Conn::protocol(Protocol::Udp);
        c.add(&Conn::protocol(Protocol::Sctp));
        c.add(&Conn::range(Protocol::Tcp, 1, 79));
        c.add(&Conn::range(Protocol::Tcp, 81, 65535));
        assert_eq!(c.to_string(), "SCTP 1-65535,TCP 1-79,81-65535,UDP 1-65535");
        c.add(&Conn::range(Protocol::Tcp, 80, 80));
        assert!(c.is_all());
    }

    #[test]
    fn union_merges_adjacent_and_intersection_cuts() {
        let mut a = Conn::range(Protocol::Tcp, 10, 20);
        a.add(&Conn::range(Protocol::Tcp, 21, 30));
        a.add(&Conn::range(Protocol::Tcp, 40, 50));
        assert_eq!(a.ports(Protocol::Tcp), [(10, 30), (40, 50)]);
        let b = Conn::range(Protocol::Tcp, 25, 45);
        assert_eq!(a.intersect(&b).ports(Protocol::Tcp), [(25, 30), (40, 45)]);
        assert!(a.intersect(&Conn::protocol(Protocol::Udp)).is_empty());
        assert_eq!(Conn::all().intersect(&a), a);
    }
}
