variable "bucket_name" {
  type        = string
  description = "Name of the S3 bucket tusk stores uploads in (tusk's s3_bucket)."
}

variable "kms_key_arn" {
  type        = string
  default     = null
  description = "KMS key for server-side encryption (SSE-KMS). Null uses the AWS-managed aws/s3 key."
}

variable "versioning_enabled" {
  type        = bool
  default     = true
  description = "Keep object versions. tusk does not need them; disabling saves the storage of overwritten or deleted objects."
}

variable "abort_incomplete_multipart_upload_days" {
  type        = number
  default     = 31
  description = "Abort multipart uploads left incomplete this many days after they started. Keep it longer than tusk's max_upload_age (default 30d): tusk's expiry slides with every PATCH, but never past that age, so tusk's reaper, not S3, ends every upload that is still resumable."

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1
    error_message = "abort_incomplete_multipart_upload_days must be at least 1."
  }
}

variable "finished_object_expiration_days" {
  type        = number
  default     = 0
  description = "Delete finished objects (under object_prefix) this many days after they were written; 0 keeps them."

  validation {
    condition     = var.finished_object_expiration_days >= 0
    error_message = "finished_object_expiration_days must be 0 (keep) or more."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  default     = 30
  description = "With versioning, delete noncurrent object versions this many days after they became noncurrent."
}

variable "object_prefix" {
  type        = string
  default     = ""
  description = "tusk's s3_prefix: the expiry of finished objects applies under it (the multipart abort rule covers the whole bucket)."
}

variable "access_log_bucket" {
  type        = string
  default     = null
  description = "Bucket receiving S3 server access logs; null turns access logging off."
}

variable "force_destroy" {
  type        = bool
  default     = false
  description = "Allow terraform destroy to delete a bucket that still holds objects."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to the bucket."
}
