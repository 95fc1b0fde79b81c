# Veil's Entra ID side: one app registration per connector with exactly the
# connector's Microsoft Graph application permissions (read-only), its
# service principal, and a federated identity credential that trusts the
# host's token (AWS STS, Cognito or Google), so there is no client secret.
#
# Admin consent is NOT granted here: a Privileged Role Administrator grants
# it with the URL `veil setup` prints, after reviewing every permission.

data "azuread_application_published_app_ids" "well_known" {}

# Role ids are looked up on the tenant's Microsoft Graph service principal,
# never hard-coded.
data "azuread_service_principal" "msgraph" {
  client_id = data.azuread_application_published_app_ids.well_known.result["MicrosoftGraph"]
}

locals {
  graph_app_id = data.azuread_application_published_app_ids.well_known.result["MicrosoftGraph"]
  # Exchange Online permissions RBAC for Applications can grant instead,
  # scoped to some mailboxes (see `veil setup`; src/cli/setup.rs
  # EXCHANGE_ROLES is the same list). Calendars.ReadBasic.All has no
  # Exchange RBAC role, so it could only be consented tenant-wide.
  exchange_permissions = ["Mail.ReadBasic.All", "Mail.Read", "MailboxSettings.Read", "Calendars.Read", "Contacts.Read"]

  requested = {
    for c in var.connectors : c => [
      for p in var.graph_permissions[c] : p
      if !(var.exchange_permissions_via_rbac && contains(local.exchange_permissions, p))
    ]
  }

  token_exchange_audience = "api://AzureADTokenExchange"
  credentials = {
    for c in var.connectors : c => (
      var.host == "aws-sts" ? {
        issuer   = var.aws_issuer
        subject  = lookup(var.aws_role_arns, c, "")
        audience = local.token_exchange_audience
      } :
      var.host == "aws-cognito" ? {
        issuer   = "https://cognito-identity.amazonaws.com"
        subject  = lookup(var.cognito_identity_ids, c, "")
        audience = lookup(var.cognito_identity_pool_ids, c, "")
        } : {
        issuer   = "https://accounts.google.com"
        subject  = lookup(var.gcp_service_account_unique_ids, c, "")
        audience = local.token_exchange_audience
      }
    )
  }
  # A credential is created once its values are known (Cognito's identity id
  # exists only after the stack is deployed: apply again then).
  ready = { for c, v in local.credentials : c => v if v.issuer != "" && v.subject != "" && v.audience != "" }
}

resource "azuread_application" "veil" {
  for_each         = var.connectors
  display_name     = "Veil ${each.key}"
  description      = "Veil pseudonymizing proxy, connector ${each.key}: read-only Microsoft Graph application permissions; authenticates with a federated credential, no secret."
  sign_in_audience = "AzureADMyOrg"
  # No owners by default: an owner can add a client secret and, once consent
  # is granted, act as Veil with its application permissions. Cloud
  # Application Administrators manage the app without being owners.
  owners = var.owners

  required_resource_access {
    resource_app_id = local.graph_app_id
    dynamic "resource_access" {
      for_each = local.requested[each.key]
      content {
        id   = data.azuread_service_principal.msgraph.app_role_ids[resource_access.value]
        type = "Role"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.graph_permissions), each.key)
      error_message = "permissions.auto.tfvars.json has no permissions for ${each.key}."
    }
    precondition {
      condition     = alltrue([for p in var.graph_permissions[each.key] : contains(keys(data.azuread_service_principal.msgraph.app_role_ids), p)])
      error_message = "A permission of ${each.key} is not an application role of Microsoft Graph in this tenant."
    }
    precondition {
      condition     = alltrue([for p in var.graph_permissions[each.key] : strcontains(p, ".Read") && !strcontains(lower(p), "write")])
      error_message = "Veil only ever needs read-only permissions; ${each.key} lists one that is not."
    }
  }
}

resource "azuread_service_principal" "veil" {
  for_each  = var.connectors
  client_id = azuread_application.veil[each.key].client_id
  owners    = var.owners
  # No user can sign in to it or be assigned to it: it is a daemon.
  app_role_assignment_required = true
  notes                        = "Veil ${each.key}. Consent: veil setup --connector ${each.key}."
}

resource "azuread_application_federated_identity_credential" "host" {
  # checkov:skip=CKV_AZURE_249:The check is for GitHub Actions issuers; here the issuer is AWS STS, Cognito or Google and the subject one exact role ARN, identity id or service account id (validated in variables.tf), never a wildcard.
  for_each       = local.ready
  application_id = azuread_application.veil[each.key].id
  display_name   = "veil-${each.key}-${var.host}"
  description    = "Tokens of Veil ${each.key}'s ${var.host} identity."
  issuer         = each.value.issuer
  subject        = each.value.subject
  audiences      = [each.value.audience]
}
