//! `AppState`: everything a request handler may reach, shared by reference.

use std::{net::IpAddr, sync::Arc};

use crate::{
    config::Settings,
    hot::HotCache,
    service::{guest::GuestService, limits::RateLimiter, usage::UsageCounters},
    store::Store,
};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub hot: HotCache,
    pub guests: GuestService,
    pub usage: Arc<UsageCounters>,
    pub guest_session_limiter: Arc<RateLimiter<IpAddr>>,
}
