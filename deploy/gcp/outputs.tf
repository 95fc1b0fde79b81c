output "service_url" {
  description = "The URL the vendor calls (once phase 2 created the service), and the audience its Google ID token must have (VEIL_CALLER_AUDIENCES)."
  value       = local.service_url
}

output "service_uri_reported" {
  description = "The URL Cloud Run reports; it serves the same service, but Veil accepts only tokens for service_url."
  value       = local.deploy_service ? google_cloud_run_v2_service.veil[0].uri : null
}

output "service_account_email" {
  description = "The identity Veil runs as."
  value       = google_service_account.veil.email
}

output "service_account_unique_id" {
  description = "The subject of the Entra federated credential (deploy/entra variable gcp_service_account_unique_ids): the numeric id, not the email."
  value       = google_service_account.veil.unique_id
}

output "secret_ids" {
  description = "Where to add the secret values (gcloud secrets versions add)."
  value = {
    salt            = local.salt_secret
    encryption_keys = local.keys_secret
  }
}
