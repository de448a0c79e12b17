{{- define "cvm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cvm.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cvm.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cvm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cvm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cvm.environmentsNamespace" -}}
{{- default .Release.Namespace .Values.environments.namespace -}}
{{- end -}}

{{- define "cvm.postgresSecret" -}}
{{- default (printf "%s-postgres" (include "cvm.fullname" .)) .Values.postgres.existingSecret -}}
{{- end -}}

{{- define "cvm.image" -}}
{{- $ref := printf "%s:%s" .name (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s" (trimSuffix "/" .root.Values.image.registry) $ref -}}
{{- else -}}
{{- $ref -}}
{{- end -}}
{{- end -}}

{{- define "cvm.serverImage" -}}
{{- include "cvm.image" (dict "root" . "name" .Values.image.server) -}}
{{- end -}}

{{- define "cvm.supervisorImage" -}}
{{- default (include "cvm.image" (dict "root" . "name" .Values.image.supervisor)) .Values.environments.supervisorImage -}}
{{- end -}}

{{/*
The Service's URL by its cluster IP: the kubelet sets <NAME>_SERVICE_HOST and
_PORT in the server's container (the Service exists before the Deployment's
Pods, helm creates it first) and expands $(...) in env values, so supervisors
reach the server without cluster DNS.
*/}}
{{- define "cvm.serviceUrl" -}}
{{- $env := include "cvm.fullname" . | upper | replace "-" "_" -}}
{{- printf "http://$(%s_SERVICE_HOST):$(%s_SERVICE_PORT)" $env $env -}}
{{- end -}}

{{- define "cvm.secretKeySecret" -}}
{{- default (printf "%s-secret-key" (include "cvm.fullname" .)) .Values.secretKey.existingSecret -}}
{{- end -}}
