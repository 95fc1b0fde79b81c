# Veil on Google Cloud Run (v2): one service per connector, its own service
# account, secrets from Secret Manager mounted as files, invocable only by
# the analytics vendor's service account. See deploy/README.md.
#
# Applied in two phases, each of which succeeds on its own:
#   1. without client_id: APIs, Veil's service account (its unique_id is the
#      Entra federated credential's subject), the two empty secrets and their
#      IAM. Then the secret values (gcloud, never through Terraform state) and
#      the Entra app registration (deploy/entra).
#   2. with client_id and image: the Cloud Run service and its invoker.
# `veil serve` refuses to start without VEIL_CLIENT_ID or without the secret
# values, so a service created before them would never become ready.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  name = "veil-${var.connector}"
  # Cloud Run's deterministic URL. Veil checks that the caller's ID token was
  # issued for exactly this audience (VEIL_CALLER_AUDIENCES); it cannot be
  # read from the service itself without a dependency cycle.
  service_url = "https://${local.name}-${data.google_project.this.number}.${var.region}.run.app"
  salt_secret = var.create_secrets ? google_secret_manager_secret.salt[0].secret_id : var.salt_secret_id
  keys_secret = var.create_secrets ? google_secret_manager_secret.encryption_keys[0].secret_id : var.encryption_keys_secret_id
  # Phase 2 (see above): the service exists only once the app registration does.
  deploy_service = var.client_id != ""
  # The vendor is admitted by its service account's unique id (`sub`) when
  # given: it never changes, unlike an email that a deleted and re-created
  # account would reuse. Otherwise by email (the vendor's tokens must then be
  # minted with --include-email).
  caller_subjects = var.vendor_service_account_unique_id
  caller_emails   = var.vendor_service_account_unique_id == "" ? var.vendor_service_account : ""
}

resource "google_project_service" "apis" {
  for_each           = toset(["run.googleapis.com", "secretmanager.googleapis.com", "iam.googleapis.com"])
  service            = each.value
  disable_on_destroy = false
}

# Veil's own identity: its ID tokens (numeric unique_id as `sub`) are what
# Entra ID trusts through the federated credential. It has no role on the
# project; only secret-level access to its two secrets.
resource "google_service_account" "veil" {
  account_id   = local.name
  display_name = "Veil ${var.connector}"
  description  = "Runs the Veil ${var.connector} Cloud Run service; reads its two secrets only."
  depends_on   = [google_project_service.apis]
}

# The secrets are created empty: their values are added with
# `openssl rand -base64 32 | gcloud secrets versions add SECRET --data-file=-`
# (deploy/README.md), so they never pass through Terraform state.
resource "google_secret_manager_secret" "salt" {
  count     = var.create_secrets ? 1 : 0
  secret_id = var.salt_secret_id
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret" "encryption_keys" {
  count     = var.create_secrets ? 1 : 0
  secret_id = var.encryption_keys_secret_id
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

# Deploying a Cloud Run service that runs as Veil's service account needs
# iam.serviceAccounts.actAs on it: Service Account User, on this account only
# (not on the project, where it would cover every service account).
resource "google_service_account_iam_member" "deployer_acts_as_veil" {
  service_account_id = google_service_account.veil.name
  role               = "roles/iam.serviceAccountUser"
  member             = var.deployer_member
}

resource "google_secret_manager_secret_iam_member" "salt" {
  secret_id = local.salt_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.veil.member
}

resource "google_secret_manager_secret_iam_member" "encryption_keys" {
  secret_id = local.keys_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.veil.member
}

resource "google_cloud_run_v2_service" "veil" {
  count    = local.deploy_service ? 1 : 0
  name     = local.name
  location = var.region
  # Reachable from the internet (the vendor calls from its own cloud), but
  # every request must carry a Google ID token of a principal with
  # roles/run.invoker on this service: only the vendor's service account.
  ingress              = "INGRESS_TRAFFIC_ALL"
  invoker_iam_disabled = false
  deletion_protection  = true

  template {
    service_account = google_service_account.veil.email
    # Veil's upstream call (var.upstream_timeout_seconds, default 25 s) plus
    # the token exchange (metadata server, then Entra: about 10 s each at
    # most) and sanitizing must finish within the request timeout.
    timeout = "${var.request_timeout_seconds}s"
    # 5 requests per instance, at most 2 instances: 10 Graph requests in
    # flight at most. Outlook allows 4 concurrent requests per app per
    # mailbox and Teams message reads 20 per second per app per tenant;
    # more parallelism only produces 429s. Each request holds a sanitized
    # page (up to several MB) in memory, so 5 per 512 MiB instance.
    max_instance_request_concurrency = 5
    scaling {
      # Scale to zero: no cost and nothing running between collection runs.
      min_instance_count = 0
      max_instance_count = var.max_instances
    }
    execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

    containers {
      image = var.image
      ports {
        container_port = 8080
      }
      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "VEIL_CONNECTOR"
        value = var.connector
      }
      env {
        name  = "VEIL_RULES_VARIANT"
        value = var.rules_variant
      }
      env {
        name  = "VEIL_SALT_FILE"
        value = "/secrets/salt/salt"
      }
      env {
        name  = "VEIL_ENCRYPTION_KEYS_FILE"
        value = "/secrets/encryption-keys/encryption-keys"
      }
      env {
        name  = "VEIL_TOKEN_PROVIDER"
        value = "gcp"
      }
      env {
        name  = "VEIL_GCP_AUDIENCE"
        value = "api://AzureADTokenExchange"
      }
      env {
        name  = "VEIL_TENANT_ID"
        value = var.tenant_id
      }
      env {
        name  = "VEIL_CLIENT_ID"
        value = var.client_id
      }
      # Caller authentication inside Veil, in addition to Cloud Run's IAM
      # check: a Google-signed ID token, for this service's URL, of the
      # vendor's service account.
      env {
        name  = "VEIL_CALLER_ISSUER"
        value = "https://accounts.google.com"
      }
      env {
        name  = "VEIL_CALLER_AUDIENCES"
        value = local.service_url
      }
      env {
        name  = "VEIL_CALLER_SUBJECTS"
        value = local.caller_subjects
      }
      env {
        name  = "VEIL_CALLER_EMAILS"
        value = local.caller_emails
      }
      env {
        name  = "VEIL_UPSTREAM_TIMEOUT_SECS"
        value = tostring(var.upstream_timeout_seconds)
      }

      volume_mounts {
        name       = "salt"
        mount_path = "/secrets/salt"
      }
      volume_mounts {
        name       = "encryption-keys"
        mount_path = "/secrets/encryption-keys"
      }
    }

    # "latest": a new key version (rotation) reaches new instances without a
    # deployment; old keys stay in the value, so issued tokens still open.
    volumes {
      name = "salt"
      secret {
        secret = local.salt_secret
        items {
          version = "latest"
          path    = "salt"
          mode    = 256 # 0400
        }
      }
    }
    volumes {
      name = "encryption-keys"
      secret {
        secret = local.keys_secret
        items {
          version = "latest"
          path    = "encryption-keys"
          mode    = 256 # 0400
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.image != ""
      error_message = "image is required with client_id (phase 2): the image built from deploy/gcp/Dockerfile, by digest."
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.salt,
    google_secret_manager_secret_iam_member.encryption_keys,
    google_service_account_iam_member.deployer_acts_as_veil,
  ]
}

# No allUsers, no allAuthenticatedUsers: only the vendor's service account
# may invoke the service.
resource "google_cloud_run_v2_service_iam_member" "vendor_invoker" {
  count    = local.deploy_service ? 1 : 0
  project  = google_cloud_run_v2_service.veil[0].project
  location = google_cloud_run_v2_service.veil[0].location
  name     = google_cloud_run_v2_service.veil[0].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.vendor_service_account}"
}
