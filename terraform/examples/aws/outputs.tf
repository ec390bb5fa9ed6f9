output "bucket_name" {
  description = "The uploads bucket."
  value       = module.bucket.bucket_name
}

output "irsa_role_arn" {
  description = "The role tusk's service account assumes."
  value       = module.iam.irsa_role_arn
}

output "release_name" {
  description = "The Helm release."
  value       = module.tusk.release_name
}
