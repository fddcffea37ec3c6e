//! Which push endpoints Pulse sends to: `https://` URLs whose host resolves only to public
//! addresses (no loopback, private, link-local, carrier-grade NAT, multicast, documentation or
//! otherwise reserved ones), unless `PULSE_PUSH_ALLOW_PRIVATE` (test set-ups, which also allows
//! `http://`). The check runs when a subscription is saved and again on every connection the
//! HTTP client makes ([`PublicResolver`]), so a name that later resolves elsewhere (DNS
//! rebinding) reaches nothing it should not.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an endpoint is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum EndpointError {
    #[error("must be an absolute https:// URL")]
    NotHttps,
    #[error("is longer than 2048 characters")]
    TooLong,
    #[error("has a host that does not resolve")]
    Unresolvable,
    #[error("resolves to a non-public address")]
    NotPublic,
}

/// Checks a subscription's endpoint; returns the parsed URL.
pub(crate) async fn check(endpoint: &str, allow_private: bool) -> Result<url::Url, EndpointError> {
    if endpoint.len() > 2048 {
        return Err(EndpointError::TooLong);
    }
    let url = url::Url::parse(endpoint).map_err(|_| EndpointError::NotHttps)?;
    let scheme_ok = url.scheme() == "https" || (allow_private && url.scheme() == "http");
    let host = url.host_str().filter(|h| !h.is_empty());
    let (Some(host), true) = (host, scheme_ok) else {
        return Err(EndpointError::NotHttps);
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::NotHttps);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| EndpointError::Unresolvable)?
        .collect();
    if addrs.is_empty() {
        return Err(EndpointError::Unresolvable);
    }
    if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(EndpointError::NotPublic);
    }
    Ok(url)
}

/// The origin (`scheme://host[:port]`) of an endpoint: the VAPID `aud` and the per-origin limit's key.
pub(crate) fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// Whether `ip` is a public unicast address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, third, ..] = ip.segments();
    let [.., high, low] = ip.segments();
    let last_four = Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8);
    // NAT64 (64:ff9b::/96) and IPv4-compatible (::a.b.c.d) addresses reach the IPv4 inside.
    if (first == 0x64 && second == 0xff9b && ip.segments()[2..6] == [0; 4])
        || (ip.segments()[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified())
    {
        return is_public_v4(last_four);
    }
    let six_to_four = Ipv4Addr::new(
        (second >> 8) as u8,
        second as u8,
        (third >> 8) as u8,
        third as u8,
    );
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && second == 0x0db8 // documentation
        || first == 0x2001 && second == 0 // Teredo: an IPv4 address behind it
        || first == 0x2002 && !is_public_v4(six_to_four)) // 6to4 of a non-public IPv4
}

/// A push service's name resolved to no public address at send time.
#[derive(Debug)]
pub(crate) struct NotPublic(String);

impl std::fmt::Display for NotPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves to no public address", self.0)
    }
}

impl std::error::Error for NotPublic {}

/// Whether `error` (or one of its causes) is [`NotPublic`].
pub(crate) fn is_not_public(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<NotPublic>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The HTTP client's resolver: system resolution, then only public addresses (unless allowed).
pub(crate) struct PublicResolver {
    pub(crate) allow_private: bool,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if kept.is_empty() {
                let error: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(NotPublic(name.as_str().to_owned()));
                return Err(error);
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            "2002:7f00:1::1",
            "2002:a01:203::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b::10.0.0.1",
            "::127.0.0.2",
        ] {
            assert!(
                !is_public(private.parse().expect("an address")),
                "{private}"
            );
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2002:808:808::1",
            "64:ff9b::8.8.8.8",
        ] {
            assert!(is_public(public.parse().expect("an address")), "{public}");
        }
    }

    #[tokio::test]
    async fn endpoints_must_be_https_and_public() {
        assert_eq!(
            check("http://push.example.com/x", false).await,
            Err(EndpointError::NotHttps)
        );
        assert_eq!(
            check("ftp://x/y", false).await,
            Err(EndpointError::NotHttps)
        );
        assert_eq!(
            check("https://127.0.0.1/x", false).await,
            Err(EndpointError::NotPublic)
        );
        assert_eq!(
            check("https://[::1]:8443/x", false).await,
            Err(EndpointError::NotPublic)
        );
        assert_eq!(
            check("https://localhost/x", false).await,
            Err(EndpointError::NotPublic)
        );
        assert!(check("http://127.0.0.1:9/x", true).await.is_ok());
        assert_eq!(
            check("https://user:pw@8.8.8.8/x", false).await,
            Err(EndpointError::NotHttps)
        );
    }
}
