package handlers

import (
	"time"

	"github.com/maskgate/maskgate/api"
	"github.com/maskgate/maskgate/sessions"
)

// toAPI shows a session the way every answer does (design §2).
func toAPI(s sessions.Session) api.Session {
	out := api.Session{
		SessionId: s.ID,
		UserId:    s.UserID,
		State:     api.SessionState(s.State),
		MaskedAt:  s.MaskedAt,
		ExpiresAt: s.ExpiresAt,
		MaskedBy:  s.MaskedBy,
		Reason:    optional(s.Reason),
	}
	if s.State == sessions.StateClosed {
		reason := api.SessionCloseReason(s.CloseReason)
		out.CloseReason = &reason
		out.UnmaskedAt = optionalTime(s.UnmaskedAt)
	}
	out.UnmaskedBy = optional(s.UnmaskedBy)
	if s.Forced {
		out.Forced = &s.Forced
	}
	return out
}

// recordingToAPI shows CXone's own view of the agent's recording.
func recordingToAPI(r sessions.Recording) *api.RecordingStatus {
	out := &api.RecordingStatus{ActiveCall: r.ActiveCall}
	if r.ActiveCall {
		out.ContactId = optional(r.Status.ContactID)
		out.SegmentId = optional(r.Status.SegmentID)
		out.InteractionId = optional(r.Status.InteractionID)
		out.StatusReason = optional(r.Status.StatusReason)
		out.RecordingStatusToAgent = optional(r.Status.RecordingStatusToAgent)
		out.RecordingStatusFromAgent = optional(r.Status.RecordingStatusFromAgent)
	}
	return out
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
