//! Abuse protection for the forms: who the client is (its address, and the proxy's word for
//! it only when configured), rate limits per client and per email address, and CSRF
//! checks (a cookie, a form token signed over it, and the Origin of the request), and the
//! signed links that open a subscriber's own pages and digests.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{AppState, WebError};
use crate::config::WebSettings;
use crate::domain::Subscriber;
use crate::domain::token::{LinkKeys, Links, Purpose, random_token};
use crate::store::{ClientInfo, DigestRecord};

/// The name of the CSRF cookie.
const CSRF_COOKIE: &str = "paperboy_csrf";

/// Rate limiters, kept for the life of the process.
pub struct Guard {
    trust_forwarded_for: bool,
    subscribe_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    subscribe_per_address: DefaultKeyedRateLimiter<String>,
    preview_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    ratings_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    likes_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    likes_per_subscriber: DefaultKeyedRateLimiter<i64>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Guard {
    pub fn new(s: &WebSettings) -> Self {
        Guard {
            trust_forwarded_for: s.trust_forwarded_for,
            subscribe_per_ip: RateLimiter::keyed(
                Quota::per_hour(nonzero(s.subscribe_per_ip_per_hour))
                    .allow_burst(nonzero(s.subscribe_ip_burst)),
            ),
            subscribe_per_address: RateLimiter::keyed(
                Quota::per_hour(nonzero(s.subscribe_per_address_per_hour))
                    .allow_burst(nonzero(s.subscribe_per_address_per_hour.min(3))),
            ),
            preview_per_ip: RateLimiter::keyed(Quota::per_minute(nonzero(
                s.preview_per_ip_per_minute,
            ))),
            ratings_per_ip: RateLimiter::keyed(Quota::per_minute(nonzero(
                s.ratings_per_ip_per_minute,
            ))),
            likes_per_ip: RateLimiter::keyed(Quota::per_hour(nonzero(s.likes_per_hour))),
            likes_per_subscriber: RateLimiter::keyed(Quota::per_hour(nonzero(s.likes_per_hour))),
        }
    }

    pub fn subscribe_from(&self, ip: IpAddr) -> Result<(), WebError> {
        verdict(self.subscribe_per_ip.check_key(&network_of(ip)))
    }

    /// `key` is the mailbox key (see `EmailAddress::mailbox_key`): every spelling of one
    /// mailbox shares its limit.
    pub fn subscribe_to(&self, key: &str) -> Result<(), WebError> {
        verdict(self.subscribe_per_address.check_key(&key.to_string()))
    }

    pub fn preview_from(&self, ip: IpAddr) -> Result<(), WebError> {
        verdict(self.preview_per_ip.check_key(&network_of(ip)))
    }

    /// A rating recorded or removed, from a digest's page or the settings page.
    pub fn ratings_from(&self, ip: IpAddr) -> Result<(), WebError> {
        verdict(self.ratings_per_ip.check_key(&network_of(ip)))
    }

    /// A list of liked papers, which may have paperboy ask arXiv for hundreds of papers:
    /// limited per client address and per reader, whose link may have leaked.
    pub fn likes_from(&self, ip: IpAddr, subscriber_id: i64) -> Result<(), WebError> {
        verdict(self.likes_per_ip.check_key(&network_of(ip)))?;
        verdict(self.likes_per_subscriber.check_key(&subscriber_id))
    }

    /// Forgets clients whose limits have fully recovered, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.subscribe_per_ip.retain_recent();
        self.subscribe_per_address.retain_recent();
        self.preview_per_ip.retain_recent();
        self.ratings_per_ip.retain_recent();
        self.likes_per_ip.retain_recent();
        self.likes_per_subscriber.retain_recent();
        self.subscribe_per_ip.shrink_to_fit();
        self.subscribe_per_address.shrink_to_fit();
        self.preview_per_ip.shrink_to_fit();
        self.ratings_per_ip.shrink_to_fit();
        self.likes_per_ip.shrink_to_fit();
        self.likes_per_subscriber.shrink_to_fit();
    }
}

/// What a client is limited as: its IPv4 address, or its IPv6 /64 (one host commonly holds
/// a whole /64, so counting single IPv6 addresses would let it through unlimited).
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn verdict<T>(
    outcome: Result<T, governor::NotUntil<<DefaultClock as Clock>::Instant>>,
) -> Result<(), WebError> {
    outcome.map(|_| ()).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        WebError::TooManyRequests {
            retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}

/// The client: its address (from the socket, or from `X-Forwarded-For` when trusted) and
/// its user agent.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

impl Client {
    pub fn info(&self) -> ClientInfo {
        ClientInfo {
            ip: Some(self.ip.to_string()),
            user_agent: self.user_agent.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let socket = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| WebError::Internal(anyhow::anyhow!("no peer address on request")))?;
        let forwarded = state
            .guard
            .trust_forwarded_for
            .then(|| forwarded_for(&parts.headers))
            .flatten();
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect());
        Ok(Client {
            ip: forwarded.unwrap_or(socket),
            user_agent,
        })
    }
}

/// The last address in `X-Forwarded-For`: the one our own proxy appended.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|s| !s.is_empty())?;
    last.parse().ok()
}

/// The CSRF cookie a browser sent, if it is one of ours.
pub fn csrf_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| crate::domain::token::looks_like_random_token(v))
}

/// The CSRF cookie to use for a page, and the `Set-Cookie` to send when the browser has
/// none yet.
pub fn csrf_for_page(
    headers: &HeaderMap,
    links: &Links,
) -> Result<(String, Option<HeaderValue>), WebError> {
    if let Some(cookie) = csrf_cookie(headers) {
        return Ok((cookie, None));
    }
    let cookie = random_token()?;
    let secure = if links.is_https() { "; Secure" } else { "" };
    let set = HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Lax; Max-Age=604800{secure}"
    ))
    .map_err(|e| WebError::Internal(e.into()))?;
    Ok((cookie, Some(set)))
}

/// A form post is accepted only from our own pages: its Origin (when the browser sends
/// one) is the base URL's, the browser does not call it cross-site, and the form token matches
/// the cookie.
pub fn check_csrf(headers: &HeaderMap, links: &Links, token: &str) -> Result<(), WebError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        // The configured base URL's origin only: the Host header is the client's to choose.
        let origin = origin.to_str().unwrap_or("");
        if origin != links.origin() {
            tracing::warn!(origin, "form post from another origin refused");
            return Err(WebError::Forbidden);
        }
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        tracing::warn!("cross-site form post refused");
        return Err(WebError::Forbidden);
    }
    let Some(cookie) = csrf_cookie(headers) else {
        return Err(WebError::Forbidden);
    };
    if !links.keys().verify_csrf(&cookie, token) {
        return Err(WebError::Forbidden);
    }
    Ok(())
}

/// The digest a signed link opens (`/digests/{id}?t=…`), or 404.
/// The `t=…` of a signed link in a query string; absent is empty (and opens nothing).
#[derive(Debug, serde::Deserialize)]
pub struct LinkToken {
    #[serde(default)]
    pub t: String,
}

impl LinkToken {
    /// `t=…`, encoded for a URL.
    pub fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("t", &self.t)
            .finish()
    }
}

pub async fn digest_for(state: &AppState, id: i64, token: &str) -> Result<DigestRecord, WebError> {
    let digest = state.store.digest(id).await?.ok_or(WebError::NotFound)?;
    if !state
        .links
        .keys()
        .verify(token, Purpose::Archive, id, &digest.archive_key)
    {
        return Err(WebError::NotFound);
    }
    Ok(digest)
}

/// The subscriber a signed link opens for `purpose`, or 404.
pub async fn subscriber_for(
    state: &AppState,
    token: &str,
    purpose: Purpose,
) -> Result<Subscriber, WebError> {
    let id = LinkKeys::subscriber_of(token).ok_or(WebError::NotFound)?;
    let subscriber = state
        .store
        .subscriber(id)
        .await?
        .ok_or(WebError::NotFound)?;
    if !state
        .links
        .keys()
        .verify(token, purpose, id, &subscriber.link_key)
    {
        return Err(WebError::NotFound);
    }
    Ok(subscriber)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_is_believed_only_for_the_address_it_appended() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
        h.append("x-forwarded-for", "3.3.3.3".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("3.3.3.3".parse().unwrap()));
        let mut bad = HeaderMap::new();
        bad.append("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(forwarded_for(&bad), None);
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network_of(a), network_of(b));
        assert_ne!(network_of(a), network_of(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(network_of(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn only_well_formed_csrf_cookies_are_read() {
        let good = random_token().unwrap();
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            format!("a=b; {CSRF_COOKIE}={good}").parse().unwrap(),
        );
        assert_eq!(csrf_cookie(&h), Some(good));
        let mut bad = HeaderMap::new();
        bad.append(header::COOKIE, format!("{CSRF_COOKIE}=x").parse().unwrap());
        assert_eq!(csrf_cookie(&bad), None);
    }
}
