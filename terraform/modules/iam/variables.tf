variable "name" {
  type        = string
  description = "Name of the IAM policy (and of the IRSA role when one is created)."
}

variable "bucket_arn" {
  type        = string
  description = "ARN of the bucket tusk uses."
}

variable "object_prefix" {
  type        = string
  default     = ""
  description = "tusk's s3_prefix: object permissions are limited to keys under it."
}

variable "kms_key_arn" {
  type        = string
  default     = null
  description = "Customer-managed KMS key encrypting the bucket; null when it uses the AWS-managed aws/s3 key (no key permissions needed)."
}

variable "create_irsa_role" {
  type        = bool
  default     = false
  description = "Create an IAM role for a Kubernetes service account (IRSA) with the policy attached."
}

variable "oidc_provider_arn" {
  type        = string
  default     = ""
  description = "ARN of the EKS cluster's IAM OIDC provider (with create_irsa_role)."
}

variable "oidc_provider_url" {
  type        = string
  default     = ""
  description = "Issuer URL of the EKS cluster's OIDC provider, with or without https:// (with create_irsa_role)."
}

variable "service_account_namespace" {
  type        = string
  default     = "tusk"
  description = "Namespace of the service account allowed to assume the role."
}

variable "service_account_name" {
  type        = string
  default     = "tusk"
  description = "Name of the service account allowed to assume the role."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to the policy and role."
}
