//! Which address a request comes from: the TCP peer, or, behind trusted proxies, the rightmost
//! `X-Forwarded-For` entry that is not itself a trusted proxy.
//!
//! Only proxies we run append to the header truthfully; everything to the left of them was
//! written by the client and may be forged. Walking from the right and stopping at the first
//! address that is not a trusted proxy therefore yields the nearest hop we can vouch for, and a
//! client can never choose its own rate-limit key by sending the header.

use std::net::IpAddr;
use std::str::FromStr;

/// An IP network (`10.0.0.0/8`, `fd00::/8`) or a single address (`192.0.2.1` = `/32`).
///
/// Host bits below the prefix are cleared on parse, so `10.1.2.3/8` means `10.0.0.0/8`.
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) match the IPv4 networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// A `trusted_proxies` entry that is neither an address nor `address/prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an address or CIDR")]
pub struct InvalidCidr;

impl Cidr {
    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Self, InvalidCidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                // Digits only: no sign, no spaces, no leading "+".
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(InvalidCidr);
                }
                (a, Some(p.parse::<u8>().map_err(|_| InvalidCidr)?))
            }
            None => (s, None),
        };
        let ip = addr
            .parse::<IpAddr>()
            .map_err(|_| InvalidCidr)?
            .to_canonical();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(InvalidCidr);
        }
        let net = match ip {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask32(prefix)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask128(prefix)).into()),
        };
        Ok(Cidr { net, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The client address of a request that arrived from `peer` with the `X-Forwarded-For` value
/// `xff` (several header lines joined with `,` in the order received).
///
/// - `peer` not in `trusted`: `peer` (the header is ignored, whatever it says).
/// - otherwise the entries are walked right to left, skipping trusted proxies; the first
///   untrusted entry is the client. If every entry is trusted, the leftmost one is.
/// - an entry that is not an address (garbage, `unknown`, an obfuscated identifier) ends the
///   walk: the last address we could vouch for is returned, never anything left of it.
///
/// Entries may carry a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`); it is ignored.
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(peer) {
        return peer;
    }
    let Some(xff) = xff else { return peer };
    let mut client = peer;
    for entry in xff.rsplit(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some(ip) = parse_entry(entry) else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` element: an address, optionally `[v6]:port` or `v4:port`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (v6, _port) = rest.split_once(']')?;
        return v6.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    let (v4, port) = entry.rsplit_once(':')?;
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4);
    }
    None
}

/// The key connections are counted under: the IPv4 address, or the IPv6 /64 (one host
/// usually owns a whole /64, so per-address limits would be trivial to dodge).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "10.1.2.3/8".parse().expect("cidr");
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.200.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.9")));
        assert!(!c.contains(ip("11.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6: Cidr = "fd00::/8".parse().expect("cidr");
        assert!(v6.contains(ip("fd12::1")));
        let one: Cidr = "2001:db8::1".parse().expect("cidr");
        assert!(one.contains(ip("2001:db8::1")) && !one.contains(ip("2001:db8::2")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/8",
            "10/8",
            "1.2.3.4/ 8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn entries_with_ports() {
        assert_eq!(parse_entry("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(parse_entry("[2001:db8::1]:80"), Some(ip("2001:db8::1")));
        assert_eq!(parse_entry("unknown"), None);
        assert_eq!(parse_entry("_hidden"), None);
    }
}
