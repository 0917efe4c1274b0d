{{/*
raft-elector.examplePod: the example's pod template (metadata and spec), shared by the
example StatefulSet and the example Deployment.
*/}}
{{- define "raft-elector.examplePod" -}}
{{- $podLabels := merge (include "raft-elector.groupSelector" . | fromYaml) (include "raft-elector.labels" . | fromYaml) (.Values.podLabels | default dict) -}}
metadata:
  labels:
    {{- toYaml $podLabels | nindent 4 }}
  {{- with .Values.example.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "raft-elector.serviceAccountName" . }}
  automountServiceAccountToken: true
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .Values.example.terminationGracePeriodSeconds }}
  {{- include "raft-elector.podScheduling" . | trim | nindent 2 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    # The data volume becomes writable by the sidecar's group (uid/gid 65532).
    fsGroup: 65532
    fsGroupChangePolicy: OnRootMismatch
    seccompProfile:
      type: RuntimeDefault
  {{- if .Values.sidecar.native }}
  initContainers:
    {{- include "raft-elector.sidecar" . | nindent 4 }}
  {{- end }}
  containers:
    - name: app
      image: "{{ include "raft-elector.withRegistry" (list .Values.example.image.repository .) }}:{{ .Values.example.image.tag }}"
      imagePullPolicy: IfNotPresent
      command: ["/bin/sh", "-c"]
      args:
        - |
          while true; do
            body=$(wget -q -T 2 -O - http://localhost:{{ .Values.sidecar.httpPort }}/leader 2>/dev/null) || body=""
            now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
            term=$(echo "$body" | sed -n 's/.*"term":\([0-9]*\).*/\1/p')
            leader=$(echo "$body" | sed -n 's/.*"leader":"\([^"]*\)".*/\1/p')
            case "$body" in
              "") echo "$now $POD_NAME: the sidecar does not answer yet" ;;
              *'"isLeader":true'*) echo "$now $POD_NAME: I am the leader (term $term)" ;;
              *) echo "$now $POD_NAME: not the leader; leader is ${leader:-unknown} (term $term)" ;;
            esac
            sleep {{ .Values.example.pollSeconds }}
          done
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
      {{- with .Values.example.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65534
        runAsGroup: 65534
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          drop:
            - ALL
        seccompProfile:
          type: RuntimeDefault
    {{- if not .Values.sidecar.native }}
    {{- include "raft-elector.sidecar" . | nindent 4 }}
    {{- end }}
  volumes:
    {{- include "raft-elector.sidecarVolumes" . | nindent 4 }}
{{- end }}
