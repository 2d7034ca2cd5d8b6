//! Which network addresses dealflow may send an API key to (DESIGN §7.5, SECURITY.md).
//!
//! The settings API checks an account URL's addresses once, when the user saves it. That is
//! not enough on its own: DNS can answer differently a minute later ("DNS rebinding"), and a
//! public name would then lead the enricher, key in hand, to `127.0.0.1` or a cloud metadata
//! service. So the client also resolves through [`PublicOnlyResolver`], which checks every
//! answer at the moment of connecting, and refuses the host if any answer is not public.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether an address is on the public internet: not private, loopback, link-local, shared,
/// reserved, documentation, multicast or unspecified — also when an IPv4 address hides inside
/// an IPv6 one (IPv4-mapped or -compatible, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    !(v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_broadcast()
        || v4.is_documentation()
        || v4.is_unspecified()
        || v4.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240)
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    if v6.is_loopback() || v6.is_unspecified() {
        return false;
    }
    // An IPv4 address carried inside an IPv6 one reaches that IPv4 host: judge it instead.
    if let Some(v4) = embedded_v4(v6) {
        return is_public_v4(v4);
    }
    let s = v6.segments();
    !(v6.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated, still routed inside)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32 documentation
        || (s[0] == 0x2001 && s[1] == 0) // 2001::/32 Teredo: the IPv4 host is obfuscated
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // 64:ff9b:1::/48 local NAT64
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // 100::/64 discard
        || s[0] == 0) // ::/16 reserved (the IPv4 forms in it were judged above)
}

/// The IPv4 address an IPv6 address stands for, in the forms a resolver or a NAT can route:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, the well-known NAT64 prefix
/// `64:ff9b::/96` and 6to4 `2002:aabb:ccdd::/48`.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return Some(mapped);
    }
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

/// A host resolved to an address dealflow will not send a key to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonPublicAddress {
    /// The host name that was resolved.
    pub host: String,
}

impl fmt::Display for NonPublicAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resolves to a private or local address; refused",
            self.host
        )
    }
}

impl StdError for NonPublicAddress {}

/// A DNS resolver for the RetailCRM client that answers only with public addresses: if any
/// address of a host is not public, the whole host is refused (the connection may have used
/// any of them), with a [`NonPublicAddress`] error.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port on the addresses it gets back.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            check_all_public(&host, &addrs)?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Refuses the host when one of its addresses is not public.
fn check_all_public(host: &str, addrs: &[SocketAddr]) -> Result<(), NonPublicAddress> {
    if addrs.iter().all(|a| is_public(a.ip())) {
        Ok(())
    } else {
        Err(NonPublicAddress {
            host: host.to_owned(),
        })
    }
}

/// Whether a reqwest error (anywhere in its source chain) is a refused address.
pub(crate) fn refused_address<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a NonPublicAddress> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(refused) = err.downcast_ref::<NonPublicAddress>() {
            return Some(refused);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_local_and_reserved_addresses_are_not_public() {
        for s in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fec0::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(!is_public(ip(s)), "{s}");
        }
        for s in ["8.8.8.8", "185.125.190.20", "2a00:1450:4010::64"] {
            assert!(is_public(ip(s)), "{s}");
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        for s in [
            "::ffff:10.0.0.1",     // mapped
            "::ffff:127.0.0.1",    // mapped loopback
            "::127.0.0.1",         // compatible
            "::169.254.169.254",   // compatible metadata
            "64:ff9b::a9fe:a9fe",  // NAT64 of 169.254.169.254
            "64:ff9b::7f00:1",     // NAT64 of 127.0.0.1
            "2002:7f00:1::",       // 6to4 of 127.0.0.1
            "2002:a00:1::1",       // 6to4 of 10.0.0.1
            "2002:c0a8:101:1::1",  // 6to4 of 192.168.1.1
            "2001:0:4136:e378::1", // Teredo: hides its IPv4 host
            "64:ff9b:1::a00:1",    // local-use NAT64
        ] {
            assert!(!is_public(ip(s)), "{s}");
        }
        for s in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert!(is_public(ip(s)), "{s}");
        }
    }

    #[test]
    fn one_private_answer_refuses_the_host() {
        let sa = |s: &str| SocketAddr::new(ip(s), 443);
        assert!(check_all_public("a.retailcrm.ru", &[sa("8.8.8.8")]).is_ok());
        assert_eq!(
            check_all_public("a.retailcrm.ru", &[sa("8.8.8.8"), sa("10.0.0.5")]),
            Err(NonPublicAddress {
                host: "a.retailcrm.ru".into()
            })
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_to_loopback() {
        // `localhost` resolves to loopback on every machine, without network access: the same
        // answer a rebinding DNS server would give after the URL was checked.
        let name: Name = "localhost".parse().unwrap();
        let err = match PublicOnlyResolver.resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let refused = refused_address(err.as_ref()).expect("a NonPublicAddress");
        assert_eq!(refused.host, "localhost");
    }
}
