//! IP subjects: the address itself and its network (the subnet limits key on the
//! /24 of an IPv4 address or the /64 of an IPv6 one by default).

use super::SubjectBuf;
use std::net::IpAddr;

/// The address octets (4 or 16 bytes).
pub fn octets(ip: IpAddr, buf: &mut SubjectBuf) -> &[u8] {
    match ip {
        IpAddr::V4(a) => {
            buf[..4].copy_from_slice(&a.octets());
            &buf[..4]
        }
        IpAddr::V6(a) => {
            buf[..16].copy_from_slice(&a.octets());
            &buf[..16]
        }
    }
}

/// The network containing `ip` (masked octets followed by the prefix length).
pub fn network(ip: IpAddr, v4_prefix: u8, v6_prefix: u8, buf: &mut SubjectBuf) -> &[u8] {
    let (len, prefix) = match ip {
        IpAddr::V4(a) => {
            let masked = u32::from(a) & mask32(v4_prefix);
            buf[..4].copy_from_slice(&masked.to_be_bytes());
            (4, v4_prefix)
        }
        IpAddr::V6(a) => {
            let masked = u128::from(a) & mask128(v6_prefix);
            buf[..16].copy_from_slice(&masked.to_be_bytes());
            (16, v6_prefix)
        }
    };
    buf[len] = prefix;
    &buf[..=len]
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

/// An IP masked for logs: IPv4 to its /24, IPv6 to its /48.
pub fn masked(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, v4: u8, v6: u8) -> Vec<u8> {
        let mut b = [0; 18];
        network(s.parse().unwrap(), v4, v6, &mut b).to_vec()
    }

    #[test]
    fn same_subnet_same_subject() {
        assert_eq!(net("10.1.2.3", 24, 64), net("10.1.2.250", 24, 64));
        assert_ne!(net("10.1.2.3", 24, 64), net("10.1.3.3", 24, 64));
        assert_eq!(net("10.1.2.3", 16, 64), net("10.1.200.3", 16, 64));
        assert_eq!(
            net("2001:db8:1:2::1", 24, 64),
            net("2001:db8:1:2:ffff::9", 24, 64)
        );
        assert_ne!(
            net("2001:db8:1:2::1", 24, 64),
            net("2001:db8:1:3::1", 24, 64)
        );
        assert_eq!(net("1.2.3.4", 0, 0), net("200.2.3.4", 0, 0));
        assert_ne!(net("1.2.3.4", 32, 64), net("1.2.3.5", 32, 64));
    }

    #[test]
    fn masking_hides_the_host() {
        assert_eq!(masked("192.0.2.77".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            masked("2001:db8:aa:bb::1".parse().unwrap()),
            "2001:db8:aa::/48"
        );
    }
}
