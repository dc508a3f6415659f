{{- define "keyway.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "keyway.labels" -}}
app.kubernetes.io/name: keyway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "keyway.backendArgs" -}}
- --backend={{ .Values.backend.type }}
{{- if eq .Values.backend.type "vault" }}
- --vault-address={{ required "backend.vault.address is required" .Values.backend.vault.address }}
- --vault-auth-method={{ .Values.backend.vault.authMethod }}
{{- with .Values.backend.vault.role }}
- --vault-role={{ . }}
{{- end }}
{{- with .Values.backend.vault.kvVersion }}
- --vault-kv-version={{ . }}
{{- end }}
{{- end }}
{{- if and (hasPrefix "aws" .Values.backend.type) .Values.backend.aws.region }}
- --aws-region={{ .Values.backend.aws.region }}
{{- end }}
{{- end -}}
