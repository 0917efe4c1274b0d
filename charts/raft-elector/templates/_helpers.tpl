{{/* Chart name, overridable. */}}
{{- define "raft-elector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: <release>-raft-elector, or the release name when it already contains the chart name. */}}
{{- define "raft-elector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "raft-elector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard labels on every object. */}}
{{- define "raft-elector.labels" -}}
helm.sh/chart: {{ include "raft-elector.chart" . }}
{{ include "raft-elector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: raft-elector
{{- end }}

{{- define "raft-elector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "raft-elector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the group's pods: .Values.selector, or this release's selector labels. */}}
{{- define "raft-elector.groupSelector" -}}
{{- if .Values.selector }}
{{- toYaml .Values.selector }}
{{- else }}
{{- include "raft-elector.selectorLabels" . }}
{{- end }}
{{- end }}

{{/* The same labels as a label selector string for --pod-selector: k=v,k=v in key order. */}}
{{- define "raft-elector.groupSelectorString" -}}
{{- $labels := include "raft-elector.groupSelector" . | fromYaml }}
{{- $pairs := list }}
{{- range $key := keys $labels | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $labels $key | toString)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{- define "raft-elector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "raft-elector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The headless Service; also the StatefulSet's serviceName, so each pod is <pod>.<service>.<ns>.svc. */}}
{{- define "raft-elector.serviceName" -}}
{{- default (include "raft-elector.fullname" .) .Values.service.name }}
{{- end }}

{{- define "raft-elector.secretName" -}}
{{- default (printf "%s-peer" (include "raft-elector.fullname" .)) .Values.secret.existingSecret }}
{{- end }}

{{- define "raft-elector.image" -}}
{{- $repository := include "raft-elector.withRegistry" (list .Values.image.repository .) }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
A repository with global.imageRegistry applied: the registry host (a first path part with
a "." or ":", or "localhost") is replaced, a repository without one gets it in front.
Call with (list <repository> <root context>).
*/}}
{{- define "raft-elector.withRegistry" -}}
{{- $repository := index . 0 }}
{{- $root := index . 1 }}
{{- $registry := "" }}
{{- if $root.Values.global }}{{ $registry = $root.Values.global.imageRegistry | default "" | trimSuffix "/" }}{{ end }}
{{- if not $registry }}
{{- $repository }}
{{- else }}
{{- $parts := splitList "/" $repository }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- printf "%s/%s" $registry (rest $parts | join "/") }}
{{- else }}
{{- printf "%s/%s" $registry $repository }}
{{- end }}
{{- end }}
{{- end }}

{{/* Scheduling of the example pods: affinity (or the preset anti-affinity) and topology spread. */}}
{{- define "raft-elector.podScheduling" -}}
{{- $selector := include "raft-elector.groupSelector" . | fromYaml }}
{{- if .Values.affinity }}
affinity:
  {{- toYaml .Values.affinity | nindent 2 }}
{{- else if eq .Values.podAntiAffinityPreset "soft" }}
affinity:
  # Voters on different nodes where the scheduler can: one node lost costs one vote.
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: {{ .Values.podAntiAffinityTopologyKey }}
          labelSelector:
            matchLabels:
              {{- toYaml $selector | nindent 14 }}
{{- else if eq .Values.podAntiAffinityPreset "hard" }}
affinity:
  # Never two voters on one node; pods stay Pending when nodes run out.
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: {{ .Values.podAntiAffinityTopologyKey }}
        labelSelector:
          matchLabels:
            {{- toYaml $selector | nindent 12 }}
{{- end }}
{{- if .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml .Values.topologySpreadConstraints | nindent 2 }}
{{- else if .Values.defaultTopologySpread }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- toYaml $selector | nindent 8 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* host:port for a listen flag; IPv6 addresses in brackets. */}}
{{- define "raft-elector.hostPort" -}}
{{- $host := index . 0 }}
{{- if contains ":" $host }}
{{- printf "[%s]:%v" $host (index . 1) }}
{{- else }}
{{- printf "%s:%v" $host (index . 1) }}
{{- end }}
{{- end }}

{{/*
Native sidecars need Kubernetes 1.29+ (SidecarContainers on by default); an older cluster
would run the init container forever and never start the app. `helm template` without a
cluster reports the placeholder v1.20.0, which tells nothing, so only 1.21 to 1.28 fail.
*/}}
{{- define "raft-elector.checkNativeSidecar" -}}
{{- if and .Values.sidecar.native (semverCompare ">=1.21.0-0, <1.29.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "sidecar.native=true needs Kubernetes 1.29 or later (native sidecars); this cluster is %s: set sidecar.native=false" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- end }}

{{/* Labels of the helm test pod, apart from the group's selector; the NetworkPolicy lets it reach the HTTP API. */}}
{{- define "raft-elector.testLabels" -}}
app.kubernetes.io/name: {{ include "raft-elector.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}

{{/* CEL: the old pod carries every group selector label (given the selector as a dict). */}}
{{- define "raft-elector.admissionGroupExpression" -}}
{{- $terms := list }}
{{- range $key := keys . | sortAlpha }}
{{- $terms = append $terms (printf "'%s' in variables.oldLabels && variables.oldLabels['%s'] == '%s'" $key $key (get $ $key | toString)) }}
{{- end }}
{{- join " && " $terms }}
{{- end }}
