output "tenant_id" {
  description = "VEIL_TENANT_ID."
  value       = var.tenant_id
}

output "client_ids" {
  description = "Per connector, the Application (client) ID: VEIL_CLIENT_ID and veil setup --client-id."
  value       = { for c, app in azuread_application.veil : c => app.client_id }
}

output "service_principal_object_ids" {
  description = "Per connector, the Enterprise application's Object ID (New-ServicePrincipal -ObjectId in Exchange RBAC for Applications)."
  value       = { for c, sp in azuread_service_principal.veil : c => sp.object_id }
}

output "requested_permissions" {
  description = "Per connector, the Graph application permissions the app registration requests (what the admin consents to)."
  value       = local.requested
}

output "federated_credentials" {
  description = "Per connector, the federated credential created (issuer, subject, audience)."
  value       = local.ready
}

output "connectors_without_federated_credential" {
  description = "Connectors whose credential values are not known yet (apply again once they are)."
  value       = sort(tolist(setsubtract(var.connectors, keys(local.ready))))
}

output "admin_consent_urls" {
  description = "Per connector, the tenant-specific admin-consent URL (for the Privileged Role Administrator)."
  value       = { for c, app in azuread_application.veil : c => "https://login.microsoftonline.com/${var.tenant_id}/adminconsent?client_id=${app.client_id}" }
}
