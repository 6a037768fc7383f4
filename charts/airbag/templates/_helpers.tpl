{{/* Names, labels and the pieces the templates share. */}}

{{- define "airbag.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "airbag.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "airbag.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "airbag.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "airbag.selectorLabels" -}}
app.kubernetes.io/name: {{ include "airbag.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "airbag.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "airbag.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "airbag.image" -}}
{{- printf "%s:%s" .Values.airbag.image.repository (default .Chart.AppVersion .Values.airbag.image.tag) -}}
{{- end -}}

{{- define "airbag.configMapName" -}}
{{- printf "%s-config" (include "airbag.fullname" .) -}}
{{- end -}}

{{/* The config file as airbag reads it: the values' config with the addresses the pod needs. */}}
{{- define "airbag.config" -}}
{{- $config := deepCopy .Values.airbag.config -}}
{{- if not $config -}}
{{- $config = .Files.Get "files/airbag.yaml" | fromYaml -}}
{{- end -}}
{{- /* Helm reads values as YAML 1.1, where an unquoted key `on` is the boolean true: give
       retry.on its name back so that values can be written as the config file is. */ -}}
{{- range $route := (default (list) $config.routes) -}}
{{- if and (kindIs "map" $route.retry) (hasKey $route.retry "true") -}}
{{- $_ := set $route.retry "on" (get $route.retry "true") -}}
{{- $_ := unset $route.retry "true" -}}
{{- end -}}
{{- end -}}
{{- $listen := default (dict) $config.listen -}}
{{- $_ := set $listen "address" (printf "0.0.0.0:%d" (int .Values.airbag.port)) -}}
{{- $_ := set $config "listen" $listen -}}
{{- $admin := default (dict) $config.admin -}}
{{- $_ := set $admin "address" (printf "0.0.0.0:%d" (int .Values.airbag.adminPort)) -}}
{{- if .Values.airbag.adminTokenSecret -}}
{{- $_ := set $admin "token_file" "/var/run/airbag/admin/token" -}}
{{- end -}}
{{- $_ := set $config "admin" $admin -}}
{{- with .Values.airbag.sharedCache -}}
{{- if .redis -}}
{{- $cache := default (dict) $config.cache -}}
{{- $shared := dict "redis" .redis "timeout" .timeout -}}
{{- if .coalesce -}}
{{- $_ := set $shared "coalesce" true -}}
{{- $_ := set $shared "coalesce_wait" (.coalesceWait | default "300ms") -}}
{{- end -}}
{{- if .passwordSecret -}}
{{- $_ := set $shared "password_file" "/var/run/airbag/redis/password" -}}
{{- end -}}
{{- if .cluster -}}
{{- $_ := set $shared "cluster" true -}}
{{- end -}}
{{- $tls := dict -}}
{{- with .tls -}}
{{- if .caSecret -}}{{- $_ := set $tls "ca" "/var/run/airbag/redis-ca/ca.crt" -}}{{- end -}}
{{- if .sni -}}{{- $_ := set $tls "sni" .sni -}}{{- end -}}
{{- if eq .verify false -}}{{- $_ := set $tls "verify" false -}}{{- end -}}
{{- end -}}
{{- if $tls -}}
{{- if not (hasPrefix "rediss://" .redis) -}}
{{- fail "airbag.sharedCache.tls applies to a rediss:// url only (airbag.sharedCache.redis)" -}}
{{- end -}}
{{- $_ := set $shared "tls" $tls -}}
{{- end -}}
{{- $_ := set $cache "shared" $shared -}}
{{- $_ := set $config "cache" $cache -}}
{{- end -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The pod's grace period: endpoint lag, then airbag's drain, then the model's own stop. */}}
{{- define "airbag.terminationGracePeriodSeconds" -}}
{{- add (int .Values.endpointLagSeconds) (int .Values.airbag.drainGraceSeconds) (int .Values.model.stopSeconds) 5 -}}
{{- end -}}

{{/* A size of docs/configuration.md ("64MiB", "1GB", "4096") in bytes. */}}
{{- define "airbag.bytes" -}}
{{- $s := toString . | trim -}}
{{- $units := dict "B" 1 "KiB" 1024 "MiB" 1048576 "GiB" 1073741824 "KB" 1000 "MB" 1000000 "GB" 1000000000 -}}
{{- $num := regexFind "^[0-9]+" $s -}}
{{- $unit := trimPrefix $num $s | trim -}}
{{- if not $unit -}}{{- $unit = "B" -}}{{- end -}}
{{- if or (not $num) (not (hasKey $units $unit)) -}}
{{- fail (printf "airbag.config.cache.max_bytes: cannot read %q as a size (e.g. 64MiB)" $s) -}}
{{- end -}}
{{- mul (int64 $num) (get $units $unit) -}}
{{- end -}}

{{/* The airbag container, shared by the Deployment and the patch mode. */}}
{{- define "airbag.container" -}}
name: airbag
image: {{ include "airbag.image" . }}
imagePullPolicy: {{ .Values.airbag.image.pullPolicy }}
{{- if eq .Values.airbag.sidecar "native" }}
restartPolicy: Always
{{- end }}
args:
  - -c
  - /etc/airbag/airbag.yaml
  - --drain-grace
  - {{ printf "%ds" (int .Values.airbag.drainGraceSeconds) | quote }}
  {{- with .Values.airbag.extraArgs }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .Values.airbag.env }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
ports:
  - { name: http, containerPort: {{ .Values.airbag.port }}, protocol: TCP }
  - { name: admin, containerPort: {{ .Values.airbag.adminPort }}, protocol: TCP }
{{- with .Values.airbag.startupProbe }}
startupProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.airbag.livenessProbe }}
livenessProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.airbag.readinessProbe }}
readinessProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if ne .Values.airbag.sidecar "native" }}
lifecycle:
  # Keep serving while the endpoint's removal reaches every proxy; SIGTERM then drains.
  preStop:
    exec: { command: [sleep, {{ .Values.endpointLagSeconds | quote }}] }
{{- end }}
resources:
  {{- toYaml .Values.airbag.resources | nindent 2 }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities: { drop: [ALL] }
  seccompProfile: { type: RuntimeDefault }
volumeMounts:
  - { name: airbag-config, mountPath: /etc/airbag, readOnly: true }
  {{- if .Values.airbag.adminTokenSecret }}
  - { name: airbag-admin-token, mountPath: /var/run/airbag/admin, readOnly: true }
  {{- end }}
  {{- if and .Values.airbag.sharedCache.redis .Values.airbag.sharedCache.passwordSecret }}
  - { name: airbag-redis-password, mountPath: /var/run/airbag/redis, readOnly: true }
  {{- end }}
  {{- if and .Values.airbag.sharedCache.redis .Values.airbag.sharedCache.tls.caSecret }}
  - { name: airbag-redis-ca, mountPath: /var/run/airbag/redis-ca, readOnly: true }
  {{- end }}
{{- end -}}

{{/* The volumes the airbag container mounts. */}}
{{- define "airbag.volumes" -}}
- name: airbag-config
  configMap:
    name: {{ include "airbag.configMapName" . }}
    items: [ { key: airbag.yaml, path: airbag.yaml } ]
{{- if .Values.airbag.adminTokenSecret }}
- name: airbag-admin-token
  secret:
    secretName: {{ .Values.airbag.adminTokenSecret }}
    items: [ { key: token, path: token } ]
{{- end }}
{{- if and .Values.airbag.sharedCache.redis .Values.airbag.sharedCache.passwordSecret }}
- name: airbag-redis-password
  secret:
    secretName: {{ .Values.airbag.sharedCache.passwordSecret }}
    items: [ { key: password, path: password } ]
{{- end }}
{{- if and .Values.airbag.sharedCache.redis .Values.airbag.sharedCache.tls.caSecret }}
- name: airbag-redis-ca
  secret:
    secretName: {{ .Values.airbag.sharedCache.tls.caSecret }}
    items: [ { key: ca.crt, path: ca.crt } ]
{{- end }}
{{- end -}}

{{/* Pod annotations: the config checksum rolls pods on change unless reload is hot. */}}
{{- define "airbag.podAnnotations" -}}
{{- $a := deepCopy .Values.podAnnotations -}}
{{- if eq .Values.airbag.reload "rollout" -}}
{{- $_ := set $a "checksum/airbag-config" (include "airbag.config" . | sha256sum) -}}
{{- end -}}
{{- with $a -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}
