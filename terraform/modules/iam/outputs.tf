output "policy_arn" {
  description = "ARN of the least-privilege policy (attach it to a role or user if no IRSA role is created)."
  value       = aws_iam_policy.tusk.arn
}

output "policy_json" {
  description = "The policy document."
  value       = data.aws_iam_policy_document.tusk.json
}

output "irsa_role_arn" {
  description = "ARN of the IRSA role (the eks.amazonaws.com/role-arn annotation of the service account), or null."
  value       = var.create_irsa_role ? aws_iam_role.irsa[0].arn : null
}
