variable "project_id" {
  description = "The Google Cloud project Veil runs in."
  type        = string
}

variable "region" {
  description = "The Cloud Run region, e.g. europe-west1."
  type        = string
}

variable "connector" {
  description = "The connector this service serves (one service per connector)."
  type        = string
  validation {
    condition     = contains(["entra-id", "outlook-mail", "outlook-cal", "msft-teams", "outlook-contacts", "outlook-mail-received"], var.connector)
    error_message = "connector must be one of entra-id, outlook-mail, outlook-cal, msft-teams, outlook-contacts, outlook-mail-received."
  }
}

variable "rules_variant" {
  description = "default (Graph ids of people as reversible p~ tokens), clear-ids, or for outlook-mail, outlook-mail-received and outlook-cal no-groups / clear-ids-no-groups."
  type        = string
  default     = "default"
  validation {
    condition     = contains(["default", "clear-ids", "no-groups", "clear-ids-no-groups"], var.rules_variant)
    error_message = "rules_variant must be default, clear-ids, no-groups or clear-ids-no-groups (the last two for outlook-mail, outlook-mail-received and outlook-cal only)."
  }
}

variable "image" {
  description = "The container image built from deploy/gcp/Dockerfile, by digest: REGION-docker.pkg.dev/PROJECT/REPO/veil@sha256:... Required with client_id (phase 2)."
  type        = string
  default     = ""
  validation {
    condition     = var.image == "" || can(regex("^[a-z0-9.-]+(:[0-9]+)?/.+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must name the image by digest (...@sha256:<64 hex digits>), so the service runs exactly the image reviewed."
  }
}

variable "tenant_id" {
  description = "The Microsoft 365 tenant's Directory (tenant) ID."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.tenant_id))
    error_message = "tenant_id must be the Directory (tenant) ID, a GUID."
  }
}

variable "client_id" {
  description = "The Application (client) ID of this connector's app registration (deploy/entra output client_ids). Required for the Cloud Run service: `veil serve` exits at start without it, so while it is empty (phase 1) only the service account and the secrets are created."
  type        = string
  default     = ""
  validation {
    condition     = var.client_id == "" || can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.client_id))
    error_message = "client_id must be the Application (client) ID, a GUID (not the Object ID)."
  }
}

variable "vendor_service_account" {
  description = "The analytics vendor's Google service account email: the only principal granted roles/run.invoker, and the only email Veil accepts in the caller's ID token."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9-]+@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", var.vendor_service_account))
    error_message = "vendor_service_account must be a service account email (NAME@PROJECT.iam.gserviceaccount.com)."
  }
}

variable "vendor_service_account_unique_id" {
  description = "Recommended: the vendor service account's numeric unique id (gcloud iam service-accounts describe EMAIL --format='value(uniqueId)'). Veil then admits the caller by the token's `sub` (VEIL_CALLER_SUBJECTS) instead of its `email`: the id never passes to another account, and the vendor's tokens need no email claim. Empty: admitted by email."
  type        = string
  default     = ""
  validation {
    condition     = var.vendor_service_account_unique_id == "" || can(regex("^[0-9]{15,25}$", var.vendor_service_account_unique_id))
    error_message = "vendor_service_account_unique_id must be the numeric unique id of the service account, not its email."
  }
}

variable "deployer_member" {
  description = "Who applies this configuration (user:NAME@DOMAIN, group:... or serviceAccount:...): granted Service Account User on Veil's service account only, which deploying the Cloud Run service needs (iam.serviceAccounts.actAs)."
  type        = string
  validation {
    condition     = can(regex("^(user|group|serviceAccount):[^@ ]+@[^@ ]+$", var.deployer_member))
    error_message = "deployer_member must be user:EMAIL, group:EMAIL or serviceAccount:EMAIL."
  }
}

variable "salt_secret_id" {
  description = "The Secret Manager secret holding the salt. Share it between the connector services of one tenant (same pseudonym for a person everywhere); only one of them creates it (create_secrets = true)."
  type        = string
  default     = "veil-salt"
}

variable "encryption_keys_secret_id" {
  description = "The Secret Manager secret holding the encryption keys (kid:secret,... newest first). Shared like the salt."
  type        = string
  default     = "veil-encryption-keys"
}

variable "create_secrets" {
  description = "Create the two secrets (empty: their values are added with gcloud, deploy/README.md, and never pass through Terraform state). false: they exist already (created by another connector's configuration)."
  type        = bool
  default     = true
}

variable "upstream_timeout_seconds" {
  description = "Veil's total time for one Graph call (VEIL_UPSTREAM_TIMEOUT_SECS); must stay below request_timeout_seconds minus the token exchange (about 20 s)."
  type        = number
  default     = 25
}

variable "request_timeout_seconds" {
  description = "Cloud Run's request timeout."
  type        = number
  default     = 60
  validation {
    condition     = var.request_timeout_seconds >= 60 && var.request_timeout_seconds <= 3600
    error_message = "request_timeout_seconds must be between 60 and 3600."
  }
}

variable "max_instances" {
  description = "Upper bound on instances; with 5 concurrent requests each, 2 instances allow 10 requests in flight (see main.tf)."
  type        = number
  default     = 2
}
