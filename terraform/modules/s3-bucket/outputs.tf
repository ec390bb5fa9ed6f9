output "bucket_name" {
  description = "Name of the bucket (tusk's s3_bucket)."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "bucket_region" {
  description = "Region of the bucket (tusk's s3_region)."
  value       = aws_s3_bucket.this.region
}
