package middleware

// MaxVerified and Verified expose the bound of the verified-token cache to the tests.
const MaxVerified = maxVerified

func (a *Authenticator) Verified() int64 { return a.verifiedSize.Load() }

// Forget drops the verified tokens, so that a benchmark measures the check itself.
func (a *Authenticator) Forget() {
	a.verified.Clear()
	a.verifiedSize.Store(0)
}
