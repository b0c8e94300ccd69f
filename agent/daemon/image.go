package daemon

import (
	"context"
	"log/slog"

	"github.com/cocoon-tee/cocoon/agent/config"
	"github.com/cocoon-tee/cocoon/agent/initdata"
	attestboot "github.com/cocoon-tee/cocoon/agent/internal/attest/setup"
	"github.com/cocoon-tee/cocoon/agent/internal/image"
	"github.com/cocoon-tee/cocoon/agent/internal/image/imgconfig"
)

// newImageDriver builds the image_guest_pull driver from initdata's
// cdh.toml; kbs:/// documents and layer keys go through the attestation
// side, and every pull is recorded in its measurement log. pauseBundle ""
// is the guest image's.
func newImageDriver(cfg config.Config, idata *initdata.Initdata, att *attestboot.Attestation, pauseBundle string, log *slog.Logger) (*image.Driver, error) {
	var cdh []byte
	if idata != nil {
		cdh = []byte(idata.Data[initdata.KeyCDH])
	}
	d := image.AgentDeps{
		CDHConfig:  cdh,
		KataRunDir: cfg.KataRunDir,
		StateDir:   cfg.StateDir,
		HTTPSProxy: cfg.HTTPSProxy,
		HTTPProxy:  cfg.HTTPProxy,
		NoProxy:    cfg.NoProxy,
		// In confidential mode cfg holds only the image file's values of
		// the keys a host could weaken (config.trustRules).
		Kernel: imgconfig.KernelParams{
			PolicyURI:                   cfg.ImagePolicyFile,
			EnableSignatureVerification: cfg.EnableSignatureVerification,
			RegistryAuthURI:             cfg.ImageRegistryAuth,
			HTTPSProxy:                  cfg.HTTPSProxy,
			HTTPProxy:                   cfg.HTTPProxy,
			NoProxy:                     cfg.NoProxy,
		},
		Timeout:      cfg.ImagePullTimeout,
		Confidential: cfg.Confidential,
		Log:          log.With("subsystem", "image"),
	}
	d.PauseBundle = pauseBundle
	if att != nil {
		d.KBS, d.Keys = att, att
		d.OnPull = func(_ context.Context, ev image.PullEvent) {
			if err := att.RecordPull(ev.Resolved, string(ev.ManifestDigest)); err != nil {
				log.Error("recording image pull failed", "image", ev.Resolved, "error", err)
			}
		}
	}
	return image.NewAgentDriver(d)
}
