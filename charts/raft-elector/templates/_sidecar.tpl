{{/*
raft-elector.sidecar: the sidecar container, as one list item. Put it under
initContainers when sidecar.native is true (Kubernetes 1.29+), under
containers otherwise. Its volumes come from raft-elector.sidecarVolumes and,
with persistence.type=pvc, raft-elector.volumeClaimTemplate.
*/}}
{{- define "raft-elector.sidecar" -}}
{{- $v := .Values.sidecar -}}
- name: {{ $v.containerName }}
  image: {{ include "raft-elector.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if $v.native }}
  # A native sidecar: started before the app containers, stopped after them.
  restartPolicy: Always
  {{- end }}
  args:
    - --kubernetes
    - --max-voters={{ .Values.maxVoters }}
    - --service={{ include "raft-elector.serviceName" . }}
    - --pod-selector={{ include "raft-elector.groupSelectorString" . }}
    - --cluster-domain={{ $v.clusterDomain }}
    - --cluster-name={{ default (include "raft-elector.fullname" .) $v.clusterName }}
    {{- if .Values.leaseMirror.enabled }}
    - --lease-name={{ include "raft-elector.fullname" . }}
    {{- else }}
    - --no-lease-mirror
    {{- end }}
    - --container-name={{ $v.containerName }}
    - --secret-file=/etc/raft-elector/secret/{{ .Values.secret.key }}
    - --data-dir={{ $v.dataDir }}
    - --http={{ include "raft-elector.hostPort" (list $v.bindAddress $v.httpPort) }}
    - --listen={{ include "raft-elector.hostPort" (list $v.bindAddress $v.raftPort) }}
    - --tick-ms={{ $v.tickMs }}
    - --election-ticks={{ $v.electionTicks }}
    - --heartbeat-ticks={{ $v.heartbeatTicks }}
    - --max-clock-drift-ms={{ $v.maxClockDriftMs }}
    - --label-key={{ $v.roleLabel.key }}
    - --label-leader={{ $v.roleLabel.leader }}
    - --label-follower={{ $v.roleLabel.follower }}
    - --log-level={{ $v.logLevel }}
    {{- if .Values.tls.enabled }}
    - --tls-cert=/etc/raft-elector/tls/{{ .Values.tls.certKey }}
    - --tls-key=/etc/raft-elector/tls/{{ .Values.tls.keyKey }}
    - --tls-ca=/etc/raft-elector/tls/{{ .Values.tls.caKey }}
    {{- end }}
    {{- range $v.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    # The member id is the pod name; the namespace scopes DNS names and API calls.
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    # The pod's uid names it exactly in Events, and makes the member one pod incarnation (<name>@<uid>).
    - name: POD_UID
      valueFrom:
        fieldRef:
          fieldPath: metadata.uid
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: http
      containerPort: {{ $v.httpPort }}
      protocol: TCP
    - name: raft
      containerPort: {{ $v.raftPort }}
      protocol: TCP
  {{- with $v.startupProbe }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: {{ .Values.persistence.volumeName }}
      mountPath: {{ $v.dataDir }}
    - name: raft-elector-secret
      mountPath: /etc/raft-elector/secret
      readOnly: true
    {{- if .Values.tls.enabled }}
    - name: raft-elector-tls
      mountPath: /etc/raft-elector/tls
      readOnly: true
    {{- end }}
{{- end }}

{{/* raft-elector.sidecarVolumes: the pod volumes the sidecar mounts (list items). */}}
{{- define "raft-elector.sidecarVolumes" -}}
- name: raft-elector-secret
  secret:
    secretName: {{ include "raft-elector.secretName" . }}
    defaultMode: 292 # 0444: the sidecar runs as a non-root uid
    items:
      - key: {{ .Values.secret.key }}
        path: {{ .Values.secret.key }}
{{- if .Values.tls.enabled }}
{{- if not .Values.tls.existingSecret }}
{{- fail "tls.enabled=true needs tls.existingSecret: the name of a Secret with the certificate, key and CA (for example one cert-manager writes)" }}
{{- end }}
- name: raft-elector-tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    defaultMode: 292 # 0444, as the peer secret: the pod may have no fsGroup
    items:
      {{- range (list .Values.tls.certKey .Values.tls.keyKey .Values.tls.caKey | uniq) }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end }}
{{- if eq .Values.persistence.type "emptyDir" }}
# emptyDir: the term and vote are lost with the pod; see the chart README.
- name: {{ .Values.persistence.volumeName }}
  emptyDir:
    sizeLimit: {{ .Values.persistence.size }}
{{- end }}
{{- end }}

{{/* raft-elector.volumeClaimTemplate: the data claim for volumeClaimTemplates (a list item), when persistence.type is pvc. */}}
{{- define "raft-elector.volumeClaimTemplate" -}}
{{- if eq .Values.persistence.type "pvc" -}}
- metadata:
    name: {{ .Values.persistence.volumeName }}
    labels:
      {{- include "raft-elector.selectorLabels" . | nindent 6 }}
  spec:
    accessModes:
      {{- toYaml .Values.persistence.accessModes | nindent 6 }}
    {{- if .Values.persistence.storageClass }}
    storageClassName: {{ if eq .Values.persistence.storageClass "-" }}""{{ else }}{{ .Values.persistence.storageClass }}{{ end }}
    {{- end }}
    resources:
      requests:
        storage: {{ .Values.persistence.size }}
{{- end }}
{{- end }}
