//! The context for the next LLM call: a conversation's system prompt and its most recent
//! messages whose stored token counts fit a budget — always ending at the newest message, never
//! over the budget. Account conversations and guest histories alike.

use std::sync::Arc;

use entity::messages;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{
    ErrorCode, ServiceError, conversations::ConversationService, guest::GuestService,
    tokenize::Encoding,
};
use crate::hot::CachedMessage;

/// Messages read per step, newest first.
const STEP: u64 = 200;

/// What fits: `messages` oldest first, `tokens` the sum with the system prompt's.
#[derive(Clone, Debug)]
pub struct Window<M> {
    pub system_prompt: Option<String>,
    pub messages: Vec<M>,
    pub tokens: i64,
    /// Older messages were left out.
    pub truncated: bool,
}

/// Takes messages newest first while they fit in `left`; true when one did not.
fn take_fitting<M>(
    newest_first: impl IntoIterator<Item = M>,
    tokens_of: impl Fn(&M) -> i64,
    left: &mut i64,
    into: &mut Vec<M>,
) -> bool {
    for m in newest_first {
        let t = tokens_of(&m);
        if t > *left {
            return true;
        }
        *left -= t;
        into.push(m);
    }
    false
}

/// A message's stored tokens; a row written before counting existed is counted now.
fn stored_or_counted(
    stored: Option<i32>,
    content: &str,
    tool_calls: Option<&str>,
    encoding: Encoding,
) -> i64 {
    stored.map_or_else(
        || i64::from(encoding.count_message(content, tool_calls)),
        i64::from,
    )
}

fn budget_error(system: i64, budget: i64) -> ServiceError {
    ServiceError::invalid(
        ErrorCode::BudgetTooSmall,
        format!("the system prompt alone takes {system} tokens; token_budget is {budget}"),
    )
}

impl ConversationService {
    /// The context of one of the user's conversations within `budget` tokens.
    pub async fn context(
        &self,
        user_id: Uuid,
        id: Uuid,
        budget: i64,
    ) -> Result<Window<messages::Model>, ServiceError> {
        let c = self.get(user_id, id).await?;
        let encoding = Encoding::for_model(c.model_used.as_deref());
        let system = c
            .system_prompt
            .as_deref()
            .map_or(0, |p| i64::from(encoding.count(p)));
        if system > budget {
            return Err(budget_error(system, budget));
        }
        let mut left = budget - system;
        let mut picked = Vec::new();
        let mut before: Option<i64> = None;
        let truncated = loop {
            let mut query = messages::Entity::find()
                .filter(messages::Column::ConversationId.eq(id))
                .filter(super::conversations::not_superseded())
                .order_by_desc(messages::Column::MessageIndex)
                .limit(STEP);
            if let Some(before) = before {
                query = query.filter(messages::Column::MessageIndex.lt(before));
            }
            let page = query.all(self.db()).await?;
            let Some(oldest) = page.last().map(|m| m.message_index) else {
                break false;
            };
            let full = page.len() as u64 == STEP;
            let tokens_of = |m: &messages::Model| {
                stored_or_counted(m.tokens_used, &m.content, m.tool_calls.as_deref(), encoding)
            };
            if take_fitting(page, tokens_of, &mut left, &mut picked) {
                break true;
            }
            if !full {
                break false;
            }
            before = Some(oldest);
        };
        picked.reverse();
        Ok(Window {
            system_prompt: c.system_prompt,
            messages: picked,
            tokens: budget - left,
            truncated,
        })
    }
}

impl GuestService {
    /// The context of a guest's history within `budget` tokens (a guest has no system prompt;
    /// `system` messages are part of the history).
    pub async fn context(
        &self,
        guest_id: &str,
        token: Option<&str>,
        conversation: Option<Uuid>,
        budget: i64,
    ) -> Result<(Uuid, Window<Arc<CachedMessage>>), ServiceError> {
        let (conversation, all, _) = self.whole_history(guest_id, token, conversation).await?;
        let encoding = Encoding::for_model(None);
        let tokens_of = |m: &Arc<CachedMessage>| {
            stored_or_counted(m.tokens, &m.content, m.tool_calls.as_deref(), encoding)
        };
        let mut left = budget;
        let mut picked = Vec::new();
        let truncated = take_fitting(all.into_iter().rev(), tokens_of, &mut left, &mut picked);
        picked.reverse();
        Ok((
            conversation,
            Window {
                system_prompt: None,
                messages: picked,
                tokens: budget - left,
                truncated,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_messages_that_fit_are_taken() {
        let mut left = 10;
        let mut taken = Vec::new();
        let cut = take_fitting([4, 5, 3, 1], |t| *t, &mut left, &mut taken);
        assert!(cut);
        assert_eq!(taken, [4, 5]);
        assert_eq!(left, 1);
        let (mut left, mut taken) = (100, Vec::new());
        assert!(!take_fitting([4, 5], |t| *t, &mut left, &mut taken));
        assert_eq!(taken, [4, 5]);
    }
}
