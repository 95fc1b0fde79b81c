terraform {
  required_version = ">= 1.5.0, < 2.0.0"
  required_providers {
    azuread = {
      source  = "hashicorp/azuread"
      version = "= 3.4.0"
    }
  }
}

# Signed in (az login) as a Cloud Application Administrator of the tenant:
# enough to create app registrations, service principals and federated
# credentials; not enough to grant consent (deliberately).
provider "azuread" {
  tenant_id = var.tenant_id
}
