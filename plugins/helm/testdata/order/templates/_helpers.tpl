{{- define "order.name" -}}{{ .Release.Name }}-order{{- end -}}
