locals {
  values = {
    replicaCount = var.replicas
    image = {
      repository = var.image_repository
      tag        = var.image_tag
    }
    serviceAccount = {
      annotations = var.irsa_role_arn == null ? {} : { "eks.amazonaws.com/role-arn" = var.irsa_role_arn }
    }
    config = {
      maxSize                = var.max_size
      shutdownTimeoutSeconds = var.shutdown_timeout_seconds
      baseUrl                = var.ingress_host == "" ? "" : "${var.ingress_tls_secret_name == "" ? "http" : "https"}://${var.ingress_host}"
    }
    s3 = {
      bucket = var.s3_bucket
      region = var.s3_region
      prefix = var.s3_prefix
    }
    redis = {
      existingSecret = var.redis_secret_name
      key            = var.redis_secret_key
    }
    etcd = {
      endpoints      = var.etcd_endpoints
      user           = var.etcd_user
      existingSecret = var.etcd_password_secret_name
      tls = {
        existingSecret = var.etcd_tls_secret_name
      }
    }
    autoscaling = {
      enabled     = var.autoscaling_max_replicas > 0
      minReplicas = var.replicas
      maxReplicas = max(var.autoscaling_max_replicas, var.replicas)
    }
    ingress = {
      enabled = var.ingress_host != ""
      hosts   = [{ host = var.ingress_host, paths = [{ path = "/files/", pathType = "Prefix" }] }]
      tls     = var.ingress_tls_secret_name == "" ? [] : [{ secretName = var.ingress_tls_secret_name, hosts = [var.ingress_host] }]
    }
  }
}

resource "helm_release" "tusk" {
  name             = var.release_name
  namespace        = var.namespace
  create_namespace = var.create_namespace
  chart            = coalesce(var.chart_path, "${path.module}/../../../helm/tusk")
  # Wait for the rollout: readiness (/readyz) means S3, Redis and etcd answered.
  wait    = true
  atomic  = true
  timeout = 600

  values = [
    yamlencode(local.values),
    yamlencode(var.extra_values),
  ]
}
