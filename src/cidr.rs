//! CIDR blocks: parsing, width, containment, and sets of addresses (unions,
//! except lists). Used by the `world-cidr` and `cluster-cidr-peer` rules and
//! by config validation (`allowedCidrs`, `clusterCidrs`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 block such as `10.0.0.0/8`. The address is kept as written
/// after masking, so `10.1.2.3/8` equals `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a CIDR block (expected e.g. 10.0.0.0/8 or fd00::/8): {why}")]
pub struct CidrError {
    pub input: String,
    pub why: &'static str,
}

impl Cidr {
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Total bits of the address family (32 or 128).
    pub fn bits(&self) -> u8 {
        if self.is_ipv4() { 32 } else { 128 }
    }

    /// The first address as a 128-bit number in its family's space.
    pub fn start(&self) -> u128 {
        to_u128(self.addr)
    }

    /// The last address of the block.
    pub fn end(&self) -> u128 {
        let host_bits = u32::from(self.bits() - self.prefix);
        if host_bits >= 128 {
            u128::MAX
        } else {
            self.start() | ((1u128 << host_bits) - 1)
        }
    }

    /// Whether `other` lies entirely inside `self` (same family).
    pub fn contains(&self, other: &Cidr) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && self.prefix <= other.prefix
            && self.start() <= other.start()
            && other.end() <= self.end()
    }
}

impl Cidr {
    /// The whole address space of one family: `0.0.0.0/0` or `::/0`.
    pub fn everything(ipv4: bool) -> Cidr {
        let addr = if ipv4 {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        };
        Cidr { addr, prefix: 0 }
    }
}

/// Whether the union of the `cidrs` of one family (`ipv4` or IPv6) covers that
/// family's entire address space. Blocks of the other family are ignored.
pub fn covers_family(cidrs: &[Cidr], ipv4: bool) -> bool {
    AddrSet::of(cidrs).covers(&Cidr::everything(ipv4))
}

impl Cidr {
    /// The number of addresses in the block; `u128::MAX` for `::/0`
    /// (2^128 does not fit).
    pub fn size(&self) -> u128 {
        let host_bits = u32::from(self.bits() - self.prefix);
        1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
    }
}

/// A set of addresses of both families: per family, sorted, disjoint and
/// non-adjacent inclusive ranges. The one place where blocks are added up
/// (`world-cidr`'s unions) and taken away (`except` lists, for
/// `cluster-cidr-peer`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrSet {
    /// `[IPv4 ranges, IPv6 ranges]`.
    ranges: [Vec<(u128, u128)>; 2],
}

fn family_index(ipv4: bool) -> usize {
    if ipv4 { 0 } else { 1 }
}

/// Sorts and merges overlapping or adjacent ranges.
fn normalise(ranges: &mut Vec<(u128, u128)>) {
    ranges.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges.iter() {
        match out.last_mut() {
            // `last.1 + 1`, without overflowing at the end of the space.
            Some(last) if last.1.checked_add(1).is_none_or(|next| start <= next) => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    *ranges = out;
}

impl AddrSet {
    /// The union of `cidrs` (both families).
    pub fn of(cidrs: &[Cidr]) -> Self {
        let mut set = Self::default();
        for c in cidrs {
            set.ranges[family_index(c.is_ipv4())].push((c.start(), c.end()));
        }
        for r in &mut set.ranges {
            normalise(r);
        }
        set
    }

    /// The addresses of `block` not in any of `except` (an `ipBlock` with
    /// its `except` list, a Cilium `CIDRSet`).
    pub fn block_except(block: &Cidr, except: &[Cidr]) -> Self {
        let mut set = Self::of(std::slice::from_ref(block));
        for e in except {
            set.remove(e);
        }
        set
    }

    /// Adds every address of `other`.
    pub fn extend(&mut self, other: &AddrSet) {
        for (mine, theirs) in self.ranges.iter_mut().zip(&other.ranges) {
            if !theirs.is_empty() {
                mine.extend_from_slice(theirs);
                normalise(mine);
            }
        }
    }

    /// Takes the addresses of `c` out.
    pub fn remove(&mut self, c: &Cidr) {
        let (cut_start, cut_end) = (c.start(), c.end());
        let ranges = &mut self.ranges[family_index(c.is_ipv4())];
        let mut out = Vec::with_capacity(ranges.len() + 1);
        for &(start, end) in ranges.iter() {
            if end < cut_start || start > cut_end {
                out.push((start, end));
                continue;
            }
            if start < cut_start {
                out.push((start, cut_start - 1));
            }
            if end > cut_end {
                out.push((cut_end + 1, end));
            }
        }
        *ranges = out;
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(Vec::is_empty)
    }

    /// The merged ranges of one family, in its own number space (an IPv4
    /// address is its 32-bit value).
    pub fn ranges(&self, ipv4: bool) -> &[(u128, u128)] {
        &self.ranges[family_index(ipv4)]
    }

    /// Whether every address of `start..=end` (one family) is in the set.
    pub fn contains_range(&self, ipv4: bool, start: u128, end: u128) -> bool {
        self.ranges[family_index(ipv4)]
            .iter()
            .any(|&(s, e)| s <= start && end <= e)
    }

    /// Whether every address of `c` is in the set.
    pub fn covers(&self, c: &Cidr) -> bool {
        let (start, end) = (c.start(), c.end());
        // Ranges are merged, so one of them holds all of `c` or none does.
        self.ranges[family_index(c.is_ipv4())]
            .iter()
            .any(|&(s, e)| s <= start && end <= e)
    }

    /// How many addresses of `c` are in the set (saturating at
    /// `u128::MAX`, which only the whole IPv6 space reaches).
    pub fn overlap(&self, c: &Cidr) -> u128 {
        let (start, end) = (c.start(), c.end());
        self.ranges[family_index(c.is_ipv4())]
            .iter()
            .filter(|&&(s, e)| s <= end && start <= e)
            .map(|&(s, e)| (e.min(end) - s.max(start)).saturating_add(1))
            .fold(0u128, u128::saturating_add)
    }
}

/// Four dot-separated decimal octets, leading zeros allowed.
fn sloppy_ipv4(s: &str) -> Option<IpAddr> {
    let octets: Vec<u8> = s
        .split('.')
        .map(|o| {
            if o.is_empty() || o.len() > 3 || !o.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                o.parse::<u8>().ok()
            }
        })
        .collect::<Option<_>>()?;
    let [a, b, c, d] = octets[..] else {
        return None;
    };
    Some(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v4) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| CidrError {
            input: s.to_string(),
            why,
        };
        let (addr, prefix) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| err("missing /prefix"))?;
        // As the API server reads it (ParseCIDRSloppy, since 1.22): IPv4
        // octets with leading zeros are decimal (`010.0.0.0` is 10.0.0.0).
        let addr: IpAddr = match addr.parse() {
            Ok(a) => a,
            Err(_) => sloppy_ipv4(addr).ok_or_else(|| err("bad address"))?,
        };
        let prefix: u8 = prefix.parse().map_err(|_| err("bad prefix length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(err("prefix length too long for the address family"));
        }
        // An IPv4-mapped IPv6 block (`::ffff:0.0.0.0/96`) is an IPv4 block:
        // judged as one, or `::ffff:0:0/96` would pass for a narrow /96.
        if let IpAddr::V6(v6) = addr
            && prefix >= 96
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            let prefix = prefix - 96;
            return Ok(Self {
                addr: mask(IpAddr::V4(v4), prefix),
                prefix,
            });
        }
        Ok(Self {
            addr: mask(addr, prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An address of one family, from its number (`AddrSet::ranges`).
pub fn format_addr(ipv4: bool, n: u128) -> String {
    if ipv4 {
        std::net::Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)).to_string()
    } else {
        std::net::Ipv6Addr::from(n).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_masks() {
        assert_eq!(c("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(c("0.0.0.0/0").prefix(), 0);
        assert_eq!(c("::/0").bits(), 128);
        assert_eq!(c("fd00::1/8").to_string(), "fd00::/8");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "::/129",
            "x/8",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment_and_range() {
        assert!(c("0.0.0.0/0").contains(&c("10.0.0.0/8")));
        assert!(c("10.0.0.0/8").contains(&c("10.2.0.0/16")));
        assert!(!c("10.0.0.0/8").contains(&c("11.0.0.0/16")));
        assert!(!c("0.0.0.0/0").contains(&c("::/0")));
        assert_eq!(c("128.0.0.0/1").end(), u128::from(u32::MAX));
        assert_eq!(c("::/0").end(), u128::MAX);
    }

    #[test]
    fn everything_and_family_coverage() {
        assert_eq!(Cidr::everything(true), c("0.0.0.0/0"));
        assert_eq!(Cidr::everything(false), c("::/0"));
        assert!(covers_family(&[c("0.0.0.0/1"), c("128.0.0.0/1")], true));
        assert!(covers_family(
            &[c("128.0.0.0/1"), c("10.0.0.0/8"), c("0.0.0.0/1")],
            true
        ));
        assert!(!covers_family(&[c("0.0.0.0/1"), c("128.0.0.0/2")], true));
        assert!(!covers_family(&[c("0.0.0.0/1"), c("192.0.0.0/2")], true));
        assert!(covers_family(
            &[c("0.0.0.0/1"), c("128.0.0.0/2"), c("192.0.0.0/2")],
            true
        ));
        assert!(!covers_family(&[], true));
        assert!(!covers_family(&[c("::/0")], true), "other family ignored");
        assert!(covers_family(&[c("::/0")], false));
        assert!(covers_family(&[c("::/1"), c("8000::/1")], false));
        assert!(!covers_family(&[c("::/1"), c("8000::/2")], false));
        assert!(covers_family(&[c("0.0.0.0/0"), c("0.0.0.0/0")], true));
    }

    /// Issue 13: `000.0.0.0/0` and `::ffff:0.0.0.0/96` gave no finding at
    /// all (they did not parse, and were skipped). The API server accepts
    /// both: they are read as it reads them.
    #[test]
    fn legacy_leading_zeros_and_ipv4_mapped_ipv6_read_as_the_api_server_does() {
        assert_eq!(c("000.0.0.0/0"), c("0.0.0.0/0"));
        assert_eq!(c("010.001.000.000/8"), c("10.0.0.0/8"));
        assert_eq!(c("::ffff:0.0.0.0/96"), c("0.0.0.0/0"));
        assert_eq!(c("::ffff:0:0/96"), c("0.0.0.0/0"));
        assert_eq!(c("::ffff:10.0.0.0/104"), c("10.0.0.0/8"));
        assert!("1.2.3/8".parse::<Cidr>().is_err());
        assert!("0256.0.0.0/8".parse::<Cidr>().is_err());
        assert!("1.2.3.4.5/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(c("10.0.0.0/8").size(), 1 << 24);
        assert_eq!(c("10.0.0.1/32").size(), 1);
        assert_eq!(c("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(c("fd00::/64").size(), 1 << 64);
        assert_eq!(c("::/1").size(), 1 << 127);
        assert_eq!(c("::/0").size(), u128::MAX, "2^128 saturates");
    }

    #[test]
    fn address_sets_add_up_and_take_away() {
        // Adjacent blocks merge; the other family stays apart.
        let s = AddrSet::of(&[c("10.0.0.0/9"), c("10.128.0.0/9"), c("fd00::/8")]);
        assert!(s.covers(&c("10.0.0.0/8")));
        assert!(!s.covers(&c("11.0.0.0/8")));
        assert!(s.covers(&c("fd00::/8")) && !s.covers(&c("fc00::/7")));
        assert_eq!(s.overlap(&c("10.0.0.0/7")), 1 << 24);
        assert_eq!(s.overlap(&c("fd00::/16")), 1 << 112);
        // An except list carves addresses out, whole or in part.
        let s = AddrSet::block_except(&c("10.0.0.0/8"), &[c("10.244.0.0/16")]);
        assert_eq!(s.overlap(&c("10.244.0.0/16")), 0);
        assert_eq!(s.overlap(&c("10.0.0.0/8")), (1 << 24) - (1 << 16));
        assert!(!s.covers(&c("10.0.0.0/8")));
        assert!(s.covers(&c("10.245.0.0/16")));
        let s = AddrSet::block_except(&c("10.0.0.0/8"), &[c("10.244.0.0/17")]);
        assert_eq!(s.overlap(&c("10.244.0.0/16")), 1 << 15);
        // Excepts of the other family or outside the block change nothing.
        let s = AddrSet::block_except(&c("10.0.0.0/8"), &[c("fd00::/8"), c("11.0.0.0/8")]);
        assert!(s.covers(&c("10.0.0.0/8")));
        // Everything but the block itself is empty.
        assert!(AddrSet::block_except(&c("10.0.0.0/8"), &[c("0.0.0.0/0")]).is_empty());
        // The ends of both spaces, without overflow.
        let mut s = AddrSet::of(&[c("::/0"), c("0.0.0.0/0")]);
        assert_eq!(s.overlap(&c("::/0")), u128::MAX);
        assert_eq!(s.overlap(&c("0.0.0.0/0")), 1 << 32);
        s.remove(&c("ffff::/16"));
        s.remove(&c("::/16"));
        s.remove(&c("255.0.0.0/8"));
        assert_eq!(s.overlap(&c("::/0")), u128::MAX - (2u128 << 112) + 1);
        assert!(!s.covers(&c("8000::/1")) && !s.covers(&c("::/1")));
        assert!(s.covers(&c("1::/16")) && s.covers(&c("8000::/2")));
        assert!(!s.covers(&c("0.0.0.0/0")) && s.covers(&c("0.0.0.0/1")));
        let mut t = AddrSet::of(&[c("ffff::/16")]);
        t.extend(&s);
        t.extend(&AddrSet::of(&[c("::/16"), c("255.0.0.0/8")]));
        assert!(t.covers(&c("::/0")) && t.covers(&c("0.0.0.0/0")));
    }
}
