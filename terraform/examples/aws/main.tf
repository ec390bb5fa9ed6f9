# tusk on an existing EKS cluster: its bucket, a least-privilege IRSA role, and the Helm release.
provider "aws" {
  region = var.region
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_eks_cluster_auth" "this" {
  name = var.cluster_name
}

data "aws_iam_openid_connect_provider" "this" {
  url = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

provider "helm" {
  kubernetes {
    host                   = data.aws_eks_cluster.this.endpoint
    cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
    token                  = data.aws_eks_cluster_auth.this.token
  }
}

locals {
  s3_prefix = "tus/"
}

module "bucket" {
  source = "../../modules/s3-bucket"

  bucket_name                            = var.bucket_name
  object_prefix                          = local.s3_prefix
  versioning_enabled                     = true
  # tusk ends every unfinished upload at max_upload_age; S3 aborts what it never reached a day
  # later, so no upload that tusk still accepts loses its parts.
  abort_incomplete_multipart_upload_days = var.max_upload_age_days + 1
  finished_object_expiration_days        = 0
}

module "iam" {
  source = "../../modules/iam"

  name                      = "tusk-${var.cluster_name}"
  bucket_arn                = module.bucket.bucket_arn
  object_prefix             = local.s3_prefix
  create_irsa_role          = true
  oidc_provider_arn         = data.aws_iam_openid_connect_provider.this.arn
  oidc_provider_url         = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
  service_account_namespace = var.namespace
  service_account_name      = "tusk"
}

module "tusk" {
  source = "../../modules/tusk"

  namespace                = var.namespace
  image_repository         = var.image_repository
  image_tag                = var.image_tag
  replicas                 = 3
  autoscaling_max_replicas = 12
  s3_bucket                = module.bucket.bucket_name
  s3_region                = var.region
  s3_prefix                = local.s3_prefix
  irsa_role_arn            = module.iam.irsa_role_arn
  redis_secret_name        = var.redis_secret_name
  etcd_endpoints           = var.etcd_endpoints
  etcd_tls_secret_name     = var.etcd_tls_secret_name
  ingress_host             = var.ingress_host
  extra_values = {
    # The IRSA trust policy names this service account.
    serviceAccount = { name = "tusk" }
    config = {
      expireAfter  = "${var.expire_after_days}d"
      maxUploadAge = "${var.max_upload_age_days}d"
    }
  }
}
