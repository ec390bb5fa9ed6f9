//! Which hosts the tool may check without `--allow-remote`: loopback and private networks.

use std::net::IpAddr;

use crate::Error;
use crate::http::Url;

/// Whether `addr` is loopback, private (RFC 1918, RFC 4193), link-local or shared (RFC 6598).
pub fn address_allowed(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return address_allowed(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves `url`'s host; every address must be allowed unless `allow_remote`.
pub(crate) async fn vet(url: &Url, allow_remote: bool) -> Result<(), Error> {
    let host = url.bare_host().to_owned();
    let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), url.port))
        .await
        .map_err(|source| Error::Resolve {
            host: host.clone(),
            source,
        })?
        .collect();
    if allow_remote {
        return Ok(());
    }
    match addrs.iter().find(|a| !address_allowed(a.ip())) {
        Some(public) => Err(Error::Remote {
            host,
            addr: public.ip(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_only() {
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.9",
            "172.20.0.1",
            "::1",
            "fd00::1",
        ] {
            assert!(
                address_allowed(ok.parse().unwrap_or_else(|_| panic!("{ok}"))),
                "{ok}"
            );
        }
        for no in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "1.1.1.1"] {
            assert!(
                !address_allowed(no.parse().unwrap_or_else(|_| panic!("{no}"))),
                "{no}"
            );
        }
    }
}
