variable "release_name" {
  type        = string
  default     = "tusk"
  description = "Name of the Helm release."
}

variable "namespace" {
  type        = string
  default     = "tusk"
  description = "Namespace of the release."
}

variable "create_namespace" {
  type        = bool
  default     = true
  description = "Create the namespace if it does not exist."
}

variable "chart_path" {
  type        = string
  default     = null
  description = "Path of the tusk chart; null uses helm/tusk of this repository."
}

variable "image_repository" {
  type        = string
  description = "Container image of tusk (built from deploy/docker/Dockerfile)."
}

variable "image_tag" {
  type        = string
  default     = ""
  description = "Image tag; empty uses the chart's appVersion."
}

variable "replicas" {
  type        = number
  default     = 3
  description = "Number of tusk nodes (minimum replicas when autoscaling)."
}

variable "autoscaling_max_replicas" {
  type        = number
  default     = 0
  description = "Maximum replicas of the HorizontalPodAutoscaler; 0 disables autoscaling."
}

variable "s3_bucket" {
  type        = string
  description = "Bucket of the uploads."
}

variable "s3_region" {
  type        = string
  description = "Region of the bucket."
}

variable "s3_prefix" {
  type        = string
  default     = ""
  description = "Prefix of every object key (tusk's s3_prefix)."
}

variable "irsa_role_arn" {
  type        = string
  default     = null
  description = "IAM role assumed by the pods' service account (IRSA); null uses the node's credentials."
}

variable "redis_secret_name" {
  type        = string
  description = "Existing Secret holding the Redis URL (redis://[user:password@]host:port/db)."
}

variable "redis_secret_key" {
  type        = string
  default     = "redis-url"
  description = "Key of the Redis URL in redis_secret_name."
}

variable "etcd_endpoints" {
  type        = list(string)
  description = "etcd client URLs (per-upload locks across nodes)."
}

variable "etcd_user" {
  type        = string
  default     = ""
  description = "etcd user; empty when etcd has no authentication."
}

variable "etcd_password_secret_name" {
  type        = string
  default     = ""
  description = "Existing Secret holding the etcd password (with etcd_user)."
}

variable "etcd_tls_secret_name" {
  type        = string
  default     = ""
  description = "Existing Secret holding etcd's CA as ca.crt (required with https:// endpoints)."
}

variable "max_size" {
  type        = string
  default     = "100GiB"
  description = "Largest upload (tusk's max_size)."
}

variable "shutdown_timeout_seconds" {
  type        = number
  default     = 10
  description = "tusk's shutdown_timeout; the pods' grace period is derived from it."
}

variable "ingress_host" {
  type        = string
  default     = ""
  description = "Public host name of the tus endpoint (ingress-nginx); empty: no Ingress."
}

variable "ingress_tls_secret_name" {
  type        = string
  default     = ""
  description = "TLS Secret of ingress_host; empty: plain HTTP."
}

variable "extra_values" {
  type        = any
  default     = {}
  description = "Further chart values, merged over the ones this module sets (see helm/tusk/values.yaml)."
}
