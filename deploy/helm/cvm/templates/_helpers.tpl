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

{{- define "cvm.secretKeySecret" -}}
{{- default (printf "%s-secret-key" (include "cvm.fullname" .)) .Values.secretKey.existingSecret -}}
{{- end -}}
