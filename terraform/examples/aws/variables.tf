variable "region" {
  type        = string
  default     = "eu-west-1"
  description = "AWS region of the bucket and the EKS cluster."
}

variable "cluster_name" {
  type        = string
  description = "Existing EKS cluster tusk runs on (with an IAM OIDC provider for IRSA)."
}

variable "bucket_name" {
  type        = string
  description = "Name of the S3 bucket to create for uploads."
}

variable "namespace" {
  type        = string
  default     = "tusk"
  description = "Kubernetes namespace of tusk."
}

variable "image_repository" {
  type        = string
  description = "Container image of tusk (e.g. an ECR repository)."
}

variable "image_tag" {
  type        = string
  description = "Image tag to deploy."
}

variable "redis_secret_name" {
  type        = string
  default     = "tusk-redis"
  description = "Existing Secret in the namespace holding the Redis URL under key redis-url (e.g. ElastiCache with appendonly/noeviction)."
}

variable "etcd_endpoints" {
  type        = list(string)
  description = "Client URLs of the etcd cluster (3 members)."
}

variable "etcd_tls_secret_name" {
  type        = string
  default     = ""
  description = "Existing Secret holding etcd's CA as ca.crt, for https:// endpoints."
}

variable "ingress_host" {
  type        = string
  default     = ""
  description = "Public host name of the tus endpoint; empty: no Ingress."
}

variable "expire_after_days" {
  type        = number
  default     = 7
  description = "tusk's expire_after in days: an unfinished upload expires this long after its last PATCH."
}

variable "max_upload_age_days" {
  type        = number
  default     = 30
  description = "tusk's max_upload_age in days: an unfinished upload expires at this age however recently it was resumed. S3 aborts incomplete multipart uploads one day later."

  validation {
    condition     = var.max_upload_age_days >= 1
    error_message = "max_upload_age_days must be at least 1: S3's rule needs tusk's limit."
  }
}
