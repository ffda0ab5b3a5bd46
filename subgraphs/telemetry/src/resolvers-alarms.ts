import type { Resolvers } from './generated/graphql.js';

/** Thin: the rules (who reads and handles what, validation, batching) live in AlarmService (`ctx.alarms`). */
export const alarmResolvers: Resolvers = {
  Query: {
    alarms: (_, args, ctx) => ctx.alarms.alarms(args),
    alarm: (_, { id }, ctx) => ctx.alarms.alarm(id),
    alarmRules: (_, { collectivityId }, ctx) => ctx.alarms.alarmRules(collectivityId),
  },
  Mutation: {
    acknowledgeAlarm: (_, { id, note }, ctx) => ctx.alarms.acknowledge(id, note),
    clearAlarm: (_, { id, note }, ctx) => ctx.alarms.clear(id, note),
    configureAlarmRule: (_, args, ctx) => ctx.alarms.configure(args),
  },
  Subscription: {
    alarmChanged: {
      subscribe: (_, args, ctx) => ctx.alarms.changes(args),
    },
  },
  Equipment: {
    alarms: (equipment, args, ctx) => ctx.alarms.equipmentAlarms(equipment.id, args),
  },
  Alarm: {
    equipment: (alarm) => ({ id: alarm.equipmentId }),
    collectivity: (alarm) => ({ id: alarm.collectivityId }),
    history: (alarm, _, ctx) => ctx.alarms.historyOf(alarm),
  },
  AlarmRule: {
    collectivity: (rule) => (rule.collectivityId === null ? null : { id: rule.collectivityId }),
  },
};
