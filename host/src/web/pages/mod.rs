//! The dashboard's pages, one module per page or resource, with what they share: the layout,
//! a page's query, what a viewer may see, and the audit trail. Templates are in
//! `host/templates/`, one per page.

mod badge;
pub(super) mod deliveries;
pub(super) mod deployments;
pub(super) mod deployments_unlock;
pub(super) mod follow;
pub(super) mod github_sign_in;
pub(super) mod jobs;
mod layout;
mod links;
mod locks;
mod params;
pub(super) mod places;
pub(super) mod plugins;
pub(super) mod sign_in;
mod trail;
pub(in crate::web) mod visible;
