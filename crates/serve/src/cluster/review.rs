//! The cluster as the authentication gate's reviewer (TokenReview, SubjectAccessReview) and the source of the authentication ConfigMap kube-apiserver publishes for extension servers.

use futures_util::future::BoxFuture;
use kube::api::Api;

use super::{Cluster, Error};

impl crate::auth::Reviewer for Cluster {
    fn review_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::auth::User>, crate::auth::ReviewError>> {
        use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_owned()),
                    ..TokenReviewSpec::default()
                },
                ..TokenReview::default()
            };
            self.review_throttle.acquire().await;
            let answer = Api::<TokenReview>::all(self.client.clone())
                .create(&kube::api::PostParams::default(), &review)
                .await
                .map_err(|e| crate::auth::ReviewError(e.to_string()))?;
            let status = answer.status.unwrap_or_default();
            if !status.authenticated.unwrap_or(false) {
                return Ok(None);
            }
            let info = status.user.unwrap_or_default();
            Ok(Some(crate::auth::User {
                name: info.username.unwrap_or_default(),
                uid: info.uid.unwrap_or_default(),
                groups: info.groups.unwrap_or_default(),
                extra: info.extra.unwrap_or_default().into_iter().collect(),
            }))
        })
    }

    fn review_access<'a>(
        &'a self,
        user: &'a crate::auth::User,
        attributes: &'a crate::auth::Attributes,
    ) -> BoxFuture<'a, Result<crate::auth::Decision, crate::auth::ReviewError>> {
        use crate::auth::Attributes;
        use k8s_openapi::api::authorization::v1::{
            NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
        };
        Box::pin(async move {
            let mut spec = SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
                ..SubjectAccessReviewSpec::default()
            };
            match attributes {
                Attributes::Resource {
                    verb,
                    group,
                    version,
                    resource,
                    subresource,
                    namespace,
                    name,
                } => {
                    let some = |s: &String| (!s.is_empty()).then(|| s.clone());
                    spec.resource_attributes = Some(ResourceAttributes {
                        verb: Some(verb.clone()),
                        group: Some(group.clone()),
                        version: some(version),
                        resource: some(resource),
                        subresource: some(subresource),
                        namespace: some(namespace),
                        name: some(name),
                        ..ResourceAttributes::default()
                    });
                }
                Attributes::NonResource { verb, path } => {
                    spec.non_resource_attributes = Some(NonResourceAttributes {
                        verb: Some(verb.clone()),
                        path: Some(path.clone()),
                    });
                }
            }
            let review = SubjectAccessReview {
                spec,
                ..SubjectAccessReview::default()
            };
            self.review_throttle.acquire().await;
            let answer = Api::<SubjectAccessReview>::all(self.client.clone())
                .create(&kube::api::PostParams::default(), &review)
                .await
                .map_err(|e| crate::auth::ReviewError(e.to_string()))?;
            let status = answer.status.unwrap_or_default();
            Ok(crate::auth::Decision {
                allowed: status.allowed && !status.denied.unwrap_or(false),
                reason: status.reason.unwrap_or_default(),
            })
        })
    }
}

impl Cluster {
    /// Reads the authentication ConfigMap kube-apiserver publishes for extension servers; `None`
    /// when it does not exist.
    pub async fn authentication_config(
        &self,
    ) -> Result<Option<crate::auth::sources::AuthenticationConfig>, Error> {
        use k8s_openapi::api::core::v1::ConfigMap;
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "kube-system");
        self.throttle.acquire().await;
        let Some(map) = api.get_opt("extension-apiserver-authentication").await? else {
            return Ok(None);
        };
        let data = map.data.unwrap_or_default();
        // The list values are JSON-encoded string arrays, e.g. ["X-Remote-User"].
        let list = |key: &str| -> Vec<String> {
            data.get(key)
                .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok())
                .unwrap_or_default()
        };
        Ok(Some(crate::auth::sources::AuthenticationConfig {
            client_ca: data.get("client-ca-file").map(|v| v.clone().into_bytes()),
            requestheader_ca: data
                .get("requestheader-client-ca-file")
                .map(|v| v.clone().into_bytes()),
            allowed_names: list("requestheader-allowed-names"),
            username_headers: list("requestheader-username-headers"),
            group_headers: list("requestheader-group-headers"),
            extra_headers_prefixes: list("requestheader-extra-headers-prefix"),
        }))
    }
}
