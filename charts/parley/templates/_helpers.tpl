{{/* Names, labels and the pieces every workload shares. */}}

{{- define "parley.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "parley.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway") */}}
{{- define "parley.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* How the other services reach one service: its Service name; with hostNetwork (one node), the
     node's loopback. (dict "root" $ "name" "licence" "port" 50051) */}}
{{- define "parley.address" -}}
{{- if .root.Values.hostNetwork -}}
{{- printf "127.0.0.1:%v" .port -}}
{{- else -}}
{{- printf "%s-%s:%v" (include "parley.fullname" .root) .name .port -}}
{{- end -}}
{{- end -}}

{{- define "parley.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "parley.secretName" -}}
{{- default (printf "%s-secrets" (include "parley.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "parley.turnSecretName" -}}
{{- default (include "parley.secretName" .) .Values.coturn.existingSecret -}}
{{- end -}}

{{/* Restart pods when their configuration changes. */}}
{{- define "parley.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{/* The container environment every service shares (the ConfigMap, the Secret, Kafka credentials). */}}
{{- define "parley.env" -}}
{{- if .Values.kafka.sasl.existingSecret }}
- name: PARLEY_KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: username
- name: PARLEY_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: password
{{- end }}
{{- if .Values.objectStore.existingSecret }}
- name: PARLEY_RECORDER__OBJECT_STORE_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.existingSecret }}
      key: accessKeyId
- name: PARLEY_RECORDER__OBJECT_STORE_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.existingSecret }}
      key: secretAccessKey
{{- end }}
{{- if .Values.coturn.enabled }}
- name: PARLEY_GATEWAY__CLIENT_ICE__TURN__SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "parley.turnSecretName" . }}
      key: turnSecret
{{- end }}
{{- end -}}

{{- define "parley.envFrom" -}}
- configMapRef:
    name: {{ include "parley.fullname" . }}-config
- secretRef:
    name: {{ include "parley.secretName" . }}
{{- end -}}

{{/* Volumes every pod mounts: writable /tmp (the root file system is read-only), Kafka's CA. */}}
{{- define "parley.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
{{- end }}
{{- end -}}

{{- define "parley.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/parley
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-tls
  mountPath: /etc/parley/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Probes (services/core/ops.py): liveness on /livez of the operations port, which answers from the
     start and never depends on another service; readiness through the gRPC health service
     parley.readiness (started, not draining, its broker and database answer).
     (dict "opsPort" 9090 "grpcPort" 50051) */}}
{{- define "parley.probes" -}}
startupProbe:
  httpGet:
    path: /livez
    port: {{ .opsPort }}
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet:
    path: /livez
    port: {{ .opsPort }}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  grpc:
    port: {{ .grpcPort }}
    service: parley.readiness
  periodSeconds: 5
  timeoutSeconds: 4
  failureThreshold: 2
{{- end -}}
