module gameday.local/kindconfig

go 1.22

require (
	sigs.k8s.io/kind v0.27.0
	sigs.k8s.io/yaml v1.4.0
)

require github.com/pkg/errors v0.9.1 // indirect
