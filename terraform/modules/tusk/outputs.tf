output "release_name" {
  description = "Name of the Helm release."
  value       = helm_release.tusk.name
}

output "namespace" {
  description = "Namespace of the release."
  value       = helm_release.tusk.namespace
}

output "chart_version" {
  description = "Version of the deployed chart."
  value       = helm_release.tusk.version
}
