locals {
  oidc_issuer = replace(var.oidc_provider_url, "https://", "")
}

# Exactly the S3 calls tusk makes (docs/metrics.md, tusk_s3_request_duration_seconds):
#   s3:PutObject            CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload, PutObject
#   s3:GetObject            GetObject, HeadObject, and the source of UploadPartCopy
#   s3:DeleteObject         DeleteObject
#   s3:AbortMultipartUpload AbortMultipartUpload
#   s3:ListBucket           HeadBucket (start-up and /readyz check)
# tusk does not list objects, multipart uploads or parts (its state is in Redis).
data "aws_iam_policy_document" "tusk" {
  statement {
    sid       = "Bucket"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }

  statement {
    sid = "Objects"
    actions = [
      "s3:PutObject",
      "s3:GetObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${var.bucket_arn}/${var.object_prefix}*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "Kms"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_policy" "tusk" {
  name        = var.name
  description = "tusk: the S3 calls of a tus upload server on one bucket"
  policy      = data.aws_iam_policy_document.tusk.json
  tags        = var.tags
}

data "aws_iam_policy_document" "irsa_trust" {
  count = var.create_irsa_role ? 1 : 0

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.service_account_namespace}:${var.service_account_name}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  count              = var.create_irsa_role ? 1 : 0
  name               = var.name
  description        = "tusk service account ${var.service_account_namespace}/${var.service_account_name} (IRSA)"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust[0].json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "irsa" {
  count      = var.create_irsa_role ? 1 : 0
  role       = aws_iam_role.irsa[0].name
  policy_arn = aws_iam_policy.tusk.arn
}
