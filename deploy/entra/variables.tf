variable "tenant_id" {
  description = "The Microsoft 365 tenant's Directory (tenant) ID."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.tenant_id))
    error_message = "tenant_id must be the Directory (tenant) ID, a GUID."
  }
}

variable "connectors" {
  description = "The connectors to register (one app registration each)."
  type        = set(string)
  validation {
    condition     = length(setsubtract(var.connectors, ["entra-id", "outlook-mail", "outlook-cal", "msft-teams", "outlook-contacts", "outlook-mail-received"])) == 0
    error_message = "connectors: each must be one of entra-id, outlook-mail, outlook-cal, msft-teams, outlook-contacts, outlook-mail-received."
  }
}

# Set by permissions.auto.tfvars.json, which tests/deploy_consistency.rs
# checks against each rule file's connector.graphPermissions. Do not edit
# here: change the rule file, then that file.
variable "graph_permissions" {
  description = "Microsoft Graph application permissions per connector (from rules/<connector>.yaml)."
  type        = map(list(string))
}

variable "exchange_permissions_via_rbac" {
  description = "true when mailbox access is granted with Exchange RBAC for Applications (recommended, see `veil setup`): the Exchange permissions are then not requested in Entra, whose consent would otherwise apply to every mailbox."
  type        = bool
  default     = false
}

variable "host" {
  description = "Where Veil runs: aws-sts, aws-cognito or gcp. Selects the federated credential."
  type        = string
  validation {
    condition     = contains(["aws-sts", "aws-cognito", "gcp"], var.host)
    error_message = "host must be aws-sts, aws-cognito or gcp."
  }
}

variable "aws_issuer" {
  description = "aws-sts: the account's outbound identity federation issuer (aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier --output text)."
  type        = string
  default     = ""
  validation {
    condition     = var.aws_issuer == "" || (startswith(var.aws_issuer, "https://") && !endswith(var.aws_issuer, "/"))
    error_message = "aws_issuer must be an https URL without a trailing slash, exactly as the token's iss."
  }
}

variable "aws_role_arns" {
  description = "aws-sts: per connector, the Lambda execution role ARN (stack output RoleArn; arn:aws:iam::ACCOUNT:role/STACK-role)."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for arn in values(var.aws_role_arns) : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "aws_role_arns: each value must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), not an assumed-role session ARN."
  }
}

variable "cognito_identity_pool_ids" {
  description = "aws-cognito: per connector, the identity pool id (stack output CognitoIdentityPoolId): the credential's audience."
  type        = map(string)
  default     = {}
}

variable "cognito_identity_ids" {
  description = "aws-cognito: per connector, Veil's identity id (IdentityId of get-open-id-token-for-developer-identity): the credential's subject. Empty on the first apply."
  type        = map(string)
  default     = {}
}

variable "gcp_service_account_unique_ids" {
  description = "gcp: per connector, the Cloud Run service account's numeric unique id (deploy/gcp output service_account_unique_id), not its email."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for id in values(var.gcp_service_account_unique_ids) : can(regex("^[0-9]{15,25}$", id))])
    error_message = "gcp_service_account_unique_ids: each value must be the numeric unique id of the service account, not its email."
  }
}

variable "owners" {
  description = "Object ids of users or service principals to own the app registrations and service principals. Default: none. An owner can add a client secret or certificate and, after admin consent, act as Veil with all its application permissions; Cloud Application Administrators manage the apps without owning them. Name owners only deliberately, e.g. a break-glass account, never the person running Terraform by default."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for o in var.owners : can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", o))])
    error_message = "owners: each must be an object id (a GUID)."
  }
}
