"""Previews on Kubernetes: one namespace and one vCluster per PR head, installed by the platform's GitOps
controller (Argo CD or Flux), the PR's image deployed into it from the repository's manifests.

Modules by job: `naming` (names and labels), `values` (the chart's values), `argocd` / `flux` / `gitops`
(the controller flavours), `manifests` (loading and image substitution), `render` (the dry run), `kube`
(the API calls), `readiness`, `reach` / `portforward`, `evidence`, `teardown` (and the janitor's search),
`ci` (is the image built yet) and `backend` (the PreviewBackend that strings them together).
"""
