{{/*
Names, labels and the settings every template shares: the image, the Kafka / control environment,
the volumes, and each candidate's effective settings (its own keys over `shadow`).
*/}}

{{- define "shadowlane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shadowlane.fullname" -}}
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

{{/* labels on every object (root context) */}}
{{- define "shadowlane.labels" -}}
app.kubernetes.io/name: {{ include "shadowlane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "shadowlane.releaseLabels" . }}
{{- end }}

{{/* labels of one workload's objects and pods: dict root, component, candidate */}}
{{- define "shadowlane.workloadLabels" -}}
{{ include "shadowlane.selectorLabels" . }}
{{ include "shadowlane.releaseLabels" .root }}
{{- end }}

{{- define "shadowlane.releaseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shadowlane
{{- end }}

{{/* selector labels of one workload: dict root, component (shadow | compare | topics), candidate */}}
{{- define "shadowlane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shadowlane.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .candidate }}
shadowlane.io/candidate: {{ . }}
{{- end }}
{{- end }}

{{- define "shadowlane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shadowlane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "shadowlane.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "shadowlane.securityProtocol" -}}
{{- $k := .Values.kafka -}}
{{- if and $k.sasl.enabled $k.tls.enabled }}SASL_SSL
{{- else if $k.sasl.enabled }}SASL_PLAINTEXT
{{- else if $k.tls.enabled }}SSL
{{- else }}PLAINTEXT
{{- end }}
{{- end }}

{{/* KEDA's name for the SASL mechanism */}}
{{- define "shadowlane.kedaSasl" -}}
{{- get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") .Values.kafka.sasl.mechanism }}
{{- end }}

{{/* TLS files are mounted here, from the CA and client-certificate Secrets */}}
{{- define "shadowlane.tlsDir" -}}/etc/shadowlane/kafka-tls{{- end }}

{{- define "shadowlane.tlsMounted" -}}
{{- $t := .Values.kafka.tls }}
{{- if and $t.enabled (or $t.caSecret.name $t.clientCertSecret.name) }}true{{ end }}
{{- end }}

{{/* the cluster, credentials and topics: every container (env list items) */}}
{{- define "shadowlane.kafkaEnv" -}}
{{- $k := .Values.kafka -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: SHADOWLANE_KAFKA__CLIENT_ID
  value: {{ $k.clientId | quote }}
- name: SHADOWLANE_KAFKA__SECURITY_PROTOCOL
  value: {{ include "shadowlane.securityProtocol" . }}
{{- if $k.sasl.enabled }}
- name: SHADOWLANE_KAFKA__SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: SHADOWLANE_KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret }}
      key: {{ $k.sasl.usernameKey }}
- name: SHADOWLANE_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret }}
      key: {{ $k.sasl.passwordKey }}
{{- end }}
{{- if $k.tls.enabled }}
- name: SHADOWLANE_KAFKA__SSL_CHECK_HOSTNAME
  value: {{ $k.tls.checkHostname | quote }}
{{- if $k.tls.caSecret.name }}
- name: SHADOWLANE_KAFKA__SSL_CAFILE
  value: {{ include "shadowlane.tlsDir" . }}/ca.crt
{{- end }}
{{- if $k.tls.clientCertSecret.name }}
- name: SHADOWLANE_KAFKA__SSL_CERTFILE
  value: {{ include "shadowlane.tlsDir" . }}/tls.crt
- name: SHADOWLANE_KAFKA__SSL_KEYFILE
  value: {{ include "shadowlane.tlsDir" . }}/tls.key
{{- end }}
{{- end }}
- name: SHADOWLANE_TOPICS__PREFIX
  value: {{ .Values.topics.prefix | quote }}
- name: SHADOWLANE_TOPICS__PARTITIONS
  value: {{ int .Values.topics.partitions | quote }}
{{- with .Values.topics.replicationFactor }}
- name: SHADOWLANE_TOPICS__REPLICATION_FACTOR
  value: {{ int . | quote }}
{{- end }}
- name: SHADOWLANE_HOME
  value: /var/lib/shadowlane
{{- end }}

{{/* the consumer groups' names: the workers join them, the lag exporter finds them by them */}}
{{- define "shadowlane.groupEnv" -}}
- name: SHADOWLANE_SHADOW__GROUP_PREFIX
  value: {{ .Values.shadow.groupPrefix | quote }}
{{- end }}

{{/* what both workers add: the control keys and the noise-floor name (env list items) */}}
{{- define "shadowlane.workerEnv" -}}
{{ include "shadowlane.kafkaEnv" . }}
{{ include "shadowlane.groupEnv" . }}
- name: SHADOWLANE_CONTROL__ENABLED
  value: {{ .Values.control.enabled | quote }}
{{- if .Values.control.enabled }}
- name: SHADOWLANE_CONTROL__SIGNING_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.control.existingSecret }}
      key: {{ .Values.control.signingKeysKey }}
{{- end }}
- name: SHADOWLANE_COMPARE__BASELINE_CANDIDATE
  value: {{ .Values.compare.baselineCandidate | quote }}
{{- end }}

{{/* the lag exporter reads the broker only: no control keys, no candidate settings */}}
{{- define "shadowlane.lagEnv" -}}
{{ include "shadowlane.kafkaEnv" . }}
{{ include "shadowlane.groupEnv" . }}
{{- end }}

{{/* an env item read from a Secret's key: dict name, secret ({name, key}) */}}
{{- define "shadowlane.secretEnv" -}}
{{- if .secret.name }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret.name }}
      key: {{ .secret.key }}
{{- end }}
{{- end }}

{{/* writable folders (the root filesystem is read-only) and the Kafka TLS files */}}
{{- define "shadowlane.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: state
  emptyDir:
    sizeLimit: 64Mi
{{- if include "shadowlane.tlsMounted" . }}
{{- $t := .Values.kafka.tls }}
- name: kafka-tls
  projected:
    defaultMode: 0440
    sources:
    {{- with $t.caSecret.name }}
    - secret:
        name: {{ . }}
        items:
        - key: {{ $t.caSecret.key }}
          path: ca.crt
    {{- end }}
    {{- with $t.clientCertSecret.name }}
    - secret:
        name: {{ . }}
        items:
        - key: {{ $t.clientCertSecret.certKey }}
          path: tls.crt
        - key: {{ $t.clientCertSecret.keyKey }}
          path: tls.key
    {{- end }}
{{- end }}
{{- end }}

{{- define "shadowlane.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: state
  mountPath: /var/lib/shadowlane
{{- if include "shadowlane.tlsMounted" . }}
- name: kafka-tls
  mountPath: {{ include "shadowlane.tlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
One candidate's effective settings as JSON (callers: `include … | fromJson`): its own keys over
`shadow`, its workload and consumer group names, autoscaling with maxReplicas resolved.
dict root, c (the candidate's entry).
*/}}
{{- define "shadowlane.candidate" -}}
{{- $v := .root.Values }}
{{- $c := .c }}
{{- $s := $v.shadow }}
{{- $as := deepCopy $s.autoscaling }}
{{- range $key, $value := (get $c "autoscaling" | default dict) }}
{{- $_ := set $as $key $value }}
{{- end }}
{{- if kindIs "invalid" $as.maxReplicas }}
{{- $_ := set $as "maxReplicas" $v.topics.partitions }}
{{- end }}
{{- $out := dict
  "name" $c.name
  "workload" (printf "%s-shadow-%s" (include "shadowlane.fullname" .root) $c.name)
  "group" (printf "%s%s" $s.groupPrefix $c.name)
  "url" $c.url
  "model" (get $c "model" | default "")
  "flag" (get $c "flag" | default "")
  "toolStubs" (get $c "toolStubs" | default dict)
  "pins" (get $c "pins" | default dict)
  "apiKeySecret" (get $c "apiKeySecret" | default (dict "name" "" "key" "api-key"))
  "autoscaling" $as
}}
{{- range $key := list "rateCap" "concurrency" "timeoutS" "readonlyTools" "replicas" "resources" }}
{{- $_ := set $out $key (ternary (get $c $key) (get $s $key) (hasKey $c $key)) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
A long-running Deployment (a worker or the lag exporter). dict root, name, component, candidate
("" but for shadow groups), replicas (ignored when autoscaled), autoscaled, args, baseEnv (the name
of the helper that renders its base env items: shadowlane.workerEnv or shadowlane.lagEnv), env
(extra env list items as YAML), resources.
*/}}
{{- define "shadowlane.deployment" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $selector := include "shadowlane.selectorLabels" (dict "root" $root "component" .component "candidate" .candidate) }}
{{- $labels := include "shadowlane.workloadLabels" (dict "root" $root "component" .component "candidate" .candidate) }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ int .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  # one pod at a time, the new one first. A worker is ready once it has joined its group (a standby
  # with no partition is ready too), so a surge member beyond the partition count never stalls it
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- $selector | nindent 6 }}
  template:
    metadata:
      labels:
        {{- $labels | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or $v.metrics.podAnnotations $v.podAnnotations }}
      annotations:
        {{- if $v.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ int $v.metrics.port | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "shadowlane.serviceAccountName" $root }}
      automountServiceAccountToken: false
      # no <SERVICE>_SERVICE_HOST, <SERVICE>_PORT… per Service in the namespace: a Service named
      # shadowlane-… would make them SHADOWLANE_* names, which are not settings (exit 3)
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ int $v.terminationGracePeriodSeconds }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "shadowlane.image" $root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          env:
            {{- include .baseEnv $root | nindent 12 }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: metrics
              containerPort: {{ int $v.metrics.port }}
              protocol: TCP
          startupProbe:
            httpGet: {path: /healthz, port: metrics}
            periodSeconds: {{ int $v.probes.startup.periodSeconds }}
            failureThreshold: {{ int $v.probes.startup.failureThreshold }}
          livenessProbe:
            httpGet: {path: /healthz, port: metrics}
            periodSeconds: {{ int $v.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ int $v.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ int $v.probes.liveness.failureThreshold }}
          # ready: a worker has its partitions and reaches the broker; the lag exporter's last
          # read of the broker succeeded
          readinessProbe:
            httpGet: {path: /readyz, port: metrics}
            periodSeconds: {{ int $v.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ int $v.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ int $v.probes.readiness.failureThreshold }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "shadowlane.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "shadowlane.volumes" $root | nindent 8 }}
      {{- if $v.spreadAcrossNodes }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- $selector | nindent 14 }}
          matchLabelKeys: [pod-template-hash]
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
