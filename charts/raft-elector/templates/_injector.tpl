{{/* Names and labels of the injector's objects. Its pods must not carry the group's selector labels. */}}
{{- define "raft-elector.injectorName" -}}
{{- printf "%s-injector" (include "raft-elector.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "raft-elector.injectorSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-injector" (include "raft-elector.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: injector
{{- end }}

{{- define "raft-elector.injectorLabels" -}}
helm.sh/chart: {{ include "raft-elector.chart" . }}
{{ include "raft-elector.injectorSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: raft-elector
{{- end }}

{{/* The Secret with the serving certificate: cert-manager's, or the one the injector generates. */}}
{{- define "raft-elector.injectorCertSecret" -}}
{{- printf "%s-tls" (include "raft-elector.injectorName" .) }}
{{- end }}

{{/*
raft-elector.injectorTemplate: the sidecar the injector adds, as JSON. It is the paste
path's own raft-elector.sidecar and raft-elector.sidecarVolumes, so both paths get one
spec; the injector sets the per-group flags (--service, --pod-selector, --cluster-name,
--lease-name, and --max-voters when annotated) from each pod's annotations and owner.
groupSecretSuffix: with a generated peer Secret (<fullname>-peer), a pod of group G mounts
G-peer, the Secret of the release named G in its own namespace; with secret.existingSecret
every pod mounts that Secret unless annotated.
*/}}
{{- define "raft-elector.injectorTemplate" -}}
{{- $t := dict "native" .Values.sidecar.native "containers" (include "raft-elector.sidecar" . | fromYamlArray) "volumes" (include "raft-elector.sidecarVolumes" . | fromYamlArray) "dataVolumeName" .Values.persistence.volumeName "secretVolumeName" "raft-elector-secret" }}
{{- if not .Values.secret.existingSecret }}
{{- $_ := set $t "groupSecretSuffix" "-peer" }}
{{- end }}
{{- $t | toPrettyJson }}
{{- end }}
